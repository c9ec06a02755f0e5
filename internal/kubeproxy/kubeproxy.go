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

// flags configure kube-proxy, with what it would otherwise change on the
// machine turned off: the conntrack table size and hash (kernel-wide, not
// per namespace) and conntrack timeouts. Flags rather than a
// KubeProxyConfiguration file: kube-proxy watches its file with an inotify
// instance of its own, and exits when it cannot have one: the control
// planes' certificate watches (13 per cluster) take the machine's 128
// per-user instances by the tenth cluster, and nodes of later ones were
// left restarting kube-proxy. The engine restarts it when what it runs
// with changes.
func flags(cfg Config, kubeconfig string) []string {
	return []string{
		"--proxy-mode=nftables",
		"--hostname-override=" + cfg.Node,
		"--kubeconfig=" + kubeconfig,
		"--cluster-cidr=" + cfg.ClusterCIDR,
		"--detect-local-mode=ClusterCIDR",
		"--healthz-bind-address=0.0.0.0:10256",
		"--metrics-bind-address=127.0.0.1:10249",
		"--conntrack-max-per-core=0",
		"--conntrack-min=0",
		"--conntrack-tcp-timeout-established=0s",
		"--conntrack-tcp-timeout-close-wait=0s",
	}
}

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
	sum := sha256.Sum256(data)
	return supervisor.Process{
		Args:    append([]string{"component", "kube-proxy"}, flags(cfg, kubeconfig)...),
		Env:     []string{"KUBEYARD_CREDENTIALS=" + hex.EncodeToString(sum[:8])},
		NetNS:   cfg.NetNS,
		PIDFile: filepath.Join(cfg.Dir, "kube-proxy.pid"),
		LogFile: filepath.Join(cfg.Dir, "kube-proxy.log"),
	}, nil
}
