package cluster

import (
	"path/filepath"
	"strings"

	"github.com/kubeyard/kubeyard/internal/kubeproxy"
	"github.com/kubeyard/kubeyard/internal/node"
)

// kubeProxyName is the supervisor's name for the kube-proxy of the node
// with the agents' key (cluster ID + "/" + node name).
func kubeProxyName(key string) string {
	id, name, _ := strings.Cut(key, "/")
	return id + "/kube-proxy-" + name
}

// ensureKubeProxy runs a real node's kube-proxy, restarted when the node's
// credentials change. A cluster without an internal endpoint (one from
// before they existed) has none: nothing in the node's namespace could
// reach its control plane.
func (r *Runtime) ensureKubeProxy(s Spec, name string, agent *node.Agent) error {
	key := s.ID + "/" + name
	r.mu.Lock()
	d := r.dataplanes[key]
	r.mu.Unlock()
	if d == nil || s.InternalEndpointIP == nil {
		return nil
	}
	p, err := kubeproxy.Process(kubeproxy.Config{
		Node: name, NetNS: d.attachment.Node, Dir: filepath.Join(d.dir, "kube-proxy"),
		Credentials: agent.KubeconfigPath(), Server: "https://" + s.InternalEndpointIP.String(),
		ClusterCIDR: s.PodCIDR,
	})
	if err != nil {
		return err
	}
	return r.cfg.Supervisor.Ensure(kubeProxyName(key), p)
}

// stopKubeProxy stops the kube-proxy of the node with the key, if it runs.
func (r *Runtime) stopKubeProxy(key string) {
	if err := r.cfg.Supervisor.Stop(kubeProxyName(key)); err != nil {
		r.cfg.Logger.Warn("stop kube-proxy", "node", key, "err", err)
	}
}
