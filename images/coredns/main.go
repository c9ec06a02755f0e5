// Command coredns is CoreDNS, the upstream project (github.com/coredns/coredns),
// with the plugins a cluster's DNS uses: the kubernetes plugin for the
// cluster's names, template to answer every other name NXDOMAIN (nothing
// is forwarded: no traffic leaves the machine), and the usual health,
// readiness, metrics, cache, reload and logging plugins. Built as the
// image registry.k8s.io/coredns/coredns that serves the kube-dns Service.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() { coremain.Run() }
