// Package kubeproxy configures the upstream kube-proxy of a real node, as
// GKE runs one on each node: in the node's network namespace, in nftables
// mode, with the node's own credentials, talking to the control plane
// through the cluster's internal endpoint (the node's namespace reaches
// nothing else). The supervisor runs the process this package describes.
package kubeproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeyard/kubeyard/internal/pki"
	"github.com/kubeyard/kubeyard/internal/supervisor"
)

// Config is one node's kube-proxy.
type Config struct {
	// Node is the node's name, NetNS its network namespace.
	Node, NetNS string
	// Dir holds the kube-proxy's configuration, kubeconfig, pidfile and log.
	Dir string
	// Credentials is the node's kubeconfig (kubelet.conf), whose client
	// certificate and CA kube-proxy uses; Server replaces its server: the
	// cluster's internal endpoint ("https://IP").
	Credentials, Server string
	// ClusterCIDR is the cluster's pod range: traffic from outside it to a
	// Service is masqueraded.
	ClusterCIDR string
}

// config is the KubeProxyConfiguration, with what kube-proxy would
// otherwise change on the machine turned off: the conntrack table size and
// hash (kernel-wide, not per namespace) and conntrack timeouts.
const config = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: %q
clientConnection:
  kubeconfig: %q
clusterCIDR: %q
detectLocalMode: ClusterCIDR
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`

// Process writes the node's kube-proxy files and returns the process to
// run. Its environment carries a digest of the credentials, so that new
// ones (a CA rotation) restart it.
func Process(cfg Config) (supervisor.Process, error) {
	kc, err := clientcmd.LoadFromFile(cfg.Credentials)
	if err != nil {
		return supervisor.Process{}, fmt.Errorf("kube-proxy %s: %w", cfg.Node, err)
	}
	for _, c := range kc.Clusters {
		c.Server = cfg.Server
	}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return supervisor.Process{}, err
	}
	kubeconfig := filepath.Join(cfg.Dir, "kubeconfig")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return supervisor.Process{}, err
	}
	if err := pki.WriteFile(kubeconfig, data); err != nil {
		return supervisor.Process{}, err
	}
	configFile := filepath.Join(cfg.Dir, "config.yaml")
	if err := os.WriteFile(configFile, fmt.Appendf(nil, config, cfg.Node, kubeconfig, cfg.ClusterCIDR), 0o600); err != nil {
		return supervisor.Process{}, err
	}
	sum := sha256.Sum256(data)
	return supervisor.Process{
		Args:    []string{"component", "kube-proxy", "--config=" + configFile},
		Env:     []string{"KUBEYARD_CREDENTIALS=" + hex.EncodeToString(sum[:8])},
		NetNS:   cfg.NetNS,
		PIDFile: filepath.Join(cfg.Dir, "kube-proxy.pid"),
		LogFile: filepath.Join(cfg.Dir, "kube-proxy.log"),
	}, nil
}
