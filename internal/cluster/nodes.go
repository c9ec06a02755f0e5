package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/node"
	"github.com/kubeyard/kubeyard/internal/poll"
)

// SimulatedLabel is the node label of a simulated pool's nodes
// ("true").
const SimulatedLabel = "kubeyard.dev/simulated"

// Node describes one node of a pool.
type Node struct {
	Name       string
	InternalIP net.IP
	KubeletIP  net.IP
	// ExternalIP is reported as the node's external address (none: a
	// private node).
	ExternalIP net.IP
	Labels     map[string]string
	CPU        string
	Memory     string
	MaxPods    int
	// Network is the node's VPC network ("P/N": project and name) and
	// Subnet its subnetwork's primary range, where InternalIP is.
	Network string
	Subnet  netip.Prefix
	// Tags are the instance's network tags, which firewall rules target.
	Tags []string
	// RoutesBased says the node's pod range is reached through the
	// network's routes (SetRoutes), not as its alias range.
	RoutesBased bool
	// Simulated nodes run no containers: their pods are Running at once
	// (for scale tests). Without Config.Pods every node is.
	Simulated bool
}

func (r *Runtime) nodeDir(s Spec, name string) string { return filepath.Join(s.Dir, "nodes", name) }

// EnsureNodes starts an agent for each node that has none (joining with
// token if the node has no credentials yet) and waits until all are Ready.
func (r *Runtime) EnsureNodes(ctx context.Context, s Spec, nodes []Node, token string) error {
	pin, err := caPin(s)
	if err != nil {
		return err
	}
	// With authorized networks, the endpoints admit nodes by address:
	// new nodes' addresses first.
	if s.AuthorizedNetworks != nil {
		if err := r.EnsureAccess(ctx, s); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		key := s.ID + "/" + n.Name
		r.mu.Lock()
		_, running := r.agents[key]
		r.mu.Unlock()
		if running {
			continue
		}
		cfg := node.Config{
			Name: n.Name,
			Dir:  r.nodeDir(s, n.Name),
			// A node talks to the control plane from its own address, which
			// the endpoint admits whatever the authorized networks.
			Join:       join.Config{Endpoint: s.NodeEndpoint(), SourceIP: n.KubeletIP, Token: token, CACertHashes: []string{pin}},
			InternalIP: n.InternalIP, KubeletIP: n.KubeletIP, ExternalIP: n.ExternalIP, Labels: n.Labels, CPU: n.CPU, Memory: n.Memory, MaxPods: n.MaxPods,
			Version: r.cfg.Version, Clock: r.cfg.Clock, Logger: r.cfg.Logger,
		}
		if r.cfg.Pods != nil && !n.Simulated {
			d, err := r.ensureDataplane(s, n)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.dataplanes[key] = d
			r.mu.Unlock()
			if err := r.applyNetwork(n.Network); err != nil {
				return err
			}
			cfg.Pods, cfg.ApproveServingCSR = d.runtime, r.approveServing(s, n.Name)
			cfg.OnPodCIDR = func(cidr netip.Prefix) error {
				a, err := d.routePods(cidr)
				if err != nil {
					return err
				}
				r.mu.Lock() // the firewall reads it
				d.attachment = a
				r.mu.Unlock()
				// Its pods are the instance's too, for the firewall.
				return r.applyNetwork(n.Network)
			}
			cfg.ClusterDNS, cfg.AllowPrivileged = clusterDNS(s), r.cfg.Pods.AllowPrivileged
		} else if n.Simulated {
			cfg.Fleet = r.fleet(s)
		}
		agent, err := node.New(cfg)
		if err != nil {
			return err
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
			defer cancel()
			if err := agent.Start(ctx); err != nil {
				errs[i] = err
				return
			}
			r.mu.Lock()
			r.agents[key] = agent
			r.mu.Unlock()
			errs[i] = r.ensureKubeProxy(s, n.Name, agent)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := r.waitNodesReady(ctx, s, nodes); err != nil {
		return err
	}
	return r.ScaleDNS(ctx, s)
}

func (r *Runtime) waitNodesReady(ctx context.Context, s Spec, nodes []Node) error {
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	// One list a round, not a read per node: a pool may have a thousand.
	waiting := map[string]bool{}
	for _, n := range nodes {
		waiting[n.Name] = true
	}
	err = poll.Until(ctx, func(ctx context.Context) error {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, obj := range list.Items {
			for _, c := range obj.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					delete(waiting, obj.Name)
				}
			}
		}
		for name := range waiting {
			return fmt.Errorf("node %s is not Ready (%d nodes are not)", name, len(waiting))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	return nil
}

// RemoveNode takes a node out the way a managed instance group does: cordon,
// evict its pods (DaemonSet pods stay, as kubectl drain leaves them), wait
// until they are gone, stop the agent and delete the Node.
func (r *Runtime) RemoveNode(ctx context.Context, s Spec, name string) error {
	r.mu.Lock()
	a, running := r.agents[s.ID+"/"+name]
	r.mu.Unlock()
	// A simulated node goes through its fleet's client: a thousand nodes
	// removed must not mean a thousand clients, each with a TLS
	// connection of its own (a client with its own dialer shares no
	// transport).
	var client kubernetes.Interface
	var err error
	if running && a.Fleet() != nil {
		client, err = a.Fleet().Client()
	} else {
		client, err = r.AdminClient(s)
	}
	if err != nil {
		return err
	}
	patch := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cordon %s: %w", name, err)
	}
	d := &drain{client: client, node: name, logger: r.cfg.Logger}
	if running {
		d.agent = a // not a nil *Agent in the interface
	}
	drainCtx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	if err := poll.Until(drainCtx, d.round); err != nil {
		return fmt.Errorf("drain %s: %w", name, err)
	}
	r.stopAgents(s.ID + "/" + name)
	if err := r.removeNodeDataplane(ctx, s, name); err != nil {
		return fmt.Errorf("remove node %s: %w", name, err)
	}
	if err := client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	return os.RemoveAll(r.nodeDir(s, name))
}

// stopAgents stops the agents whose key has the prefix.
func (r *Runtime) stopAgents(prefix string) {
	r.mu.Lock()
	var stop []*node.Agent
	for k, a := range r.agents {
		if strings.HasPrefix(k, prefix) {
			stop = append(stop, a)
			delete(r.agents, k)
		}
	}
	for id := range r.fleets {
		if strings.HasPrefix(id+"/", prefix) { // the whole cluster's
			delete(r.fleets, id)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range stop {
		wg.Go(a.Close)
	}
	wg.Wait()
}

// fleet returns what the cluster's simulated nodes share: one client,
// whose rate limits are lifted as KWOK lifts its controller's (a
// thousand nodes register at once).
func (r *Runtime) fleet(s Spec) *node.Fleet {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.fleets[s.ID]
	if f == nil {
		f = node.NewFleet(func() (kubernetes.Interface, error) { return r.adminClient(s, -1, 0) }, r.cfg.Logger)
		r.fleets[s.ID] = f
	}
	return f
}
