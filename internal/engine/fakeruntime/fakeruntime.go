// Package fakeruntime is a cluster runtime for the engine's unit tests. It
// keeps in memory what a real runtime would run (control planes, nodes,
// bootstrap tokens, pod ranges, CA phases, who may reach the endpoints)
// and answers at once; a hook lets a test hold any call (to keep an
// operation running) or fail it (to stop an engine, as a crash would).
// Like a machine's processes, its state outlives the engines that use it.
package fakeruntime

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/flows"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/logcollect"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// Cluster is what runs of one cluster.
type Cluster struct {
	Name string
	// Nodes are the nodes that run, by name.
	Nodes map[string]cluster.Node
	// PodCIDRs are the pod ranges nodes got, by node name.
	PodCIDRs map[string]string
	Tokens   []join.BootstrapToken
	// Allow is who the endpoints admit (nil: everyone).
	Allow []netip.Prefix
	// Endpoint is the address the control plane serves.
	Endpoint string
	// Replaced counts replica replacements, by host index.
	Replaced map[int]int
	// CAPhase is the last CA rotation phase applied.
	CAPhase     cluster.CAPhase
	UploadedKey string
	// IntraNodeVisibility says whether netd runs on the nodes.
	IntraNodeVisibility bool
	podBlocks           int
}

// Runtime is a fake engine.Runtime.
type Runtime struct {
	// Hook, when set, is called before each call with its name
	// ("EnsureNodes", ...) and cluster: an error fails the call, and a
	// hook that blocks holds it (honouring ctx where the call has one).
	Hook func(ctx context.Context, call string, s cluster.Spec) error
	// Unhealthy makes CheckHealthy fail for the clusters named.
	Unhealthy map[string]bool

	mu          sync.Mutex
	clusters    map[string]*Cluster // by cluster ID
	calls       []string
	firewalls   map[string][]firewall.Rule
	connections map[string]connections
	pods        map[string]map[netip.Addr]cluster.PodName
	routes      map[string][]vpcnet.Route
	hits        map[string][]firewall.Hit
	services    map[string]*services // by cluster name
	logSources  map[string][]logcollect.Source
	events      map[string][]corev1.Event
	kubernetes  map[string][]byte // by cluster name and path
}

// New returns an empty fake runtime.
func New() *Runtime {
	return &Runtime{clusters: map[string]*Cluster{}, Unhealthy: map[string]bool{}, firewalls: map[string][]firewall.Rule{},
		connections: map[string]connections{}, pods: map[string]map[netip.Addr]cluster.PodName{}, routes: map[string][]vpcnet.Route{},
		hits: map[string][]firewall.Hit{}, kubernetes: map[string][]byte{}}
}

// SetFirewall records a network's rules.
func (r *Runtime) SetFirewall(network string, rules []firewall.Rule) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.firewalls[network] = rules
	return nil
}

// FirewallHits are what SetFirewallHits said of the network.
func (r *Runtime) FirewallHits(network string) ([]firewall.Hit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits[network]), nil
}

// SetFirewallHits says what the network's logging rules decided lately.
func (r *Runtime) SetFirewallHits(network string, hits []firewall.Hit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits[network] = hits
}

// SetRoutes records a network's routes.
func (r *Runtime) SetRoutes(network string, routes []vpcnet.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[network] = slices.Clone(routes)
	return nil
}

// Routes are the routes last set for a network ("P/N").
func (r *Runtime) Routes(network string) []vpcnet.Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.routes[network])
}

// Connections are what SetConnections said of the network.
func (r *Runtime) Connections(network string) ([]flows.Flow, []firewall.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.connections[network]
	return slices.Clone(c.flows), slices.Clone(c.instances), nil
}

// SetConnections says what crosses a network ("P/N") now, and its
// instances.
func (r *Runtime) SetConnections(network string, fs []flows.Flow, instances []firewall.Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connections[network] = connections{fs, instances}
}

type connections struct {
	flows     []flows.Flow
	instances []firewall.Instance
}

// PodAddresses are what SetPods said of the cluster.
func (r *Runtime) PodAddresses(ctx context.Context, s cluster.Spec) (map[netip.Addr]cluster.PodName, error) {
	if err := r.enter(ctx, "PodAddresses", s); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.pods[s.Name]), nil
}

// ReadKubernetes answers what SetKubernetes said of the cluster's path,
// and NOT_FOUND otherwise.
func (r *Runtime) ReadKubernetes(ctx context.Context, s cluster.Spec, path string, query url.Values) ([]byte, error) {
	if err := r.enter(ctx, "ReadKubernetes", s); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	body, ok := r.kubernetes[s.Name+path]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{}, path)
	}
	return body, nil
}

// SetKubernetes says what a read of the cluster's API at path answers.
func (r *Runtime) SetKubernetes(clusterName, path string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kubernetes[clusterName+path] = body
}

// SetPods names a cluster's pods by address.
func (r *Runtime) SetPods(clusterName string, pods map[netip.Addr]cluster.PodName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods[clusterName] = pods
}

// Firewall is the rules last set for a network ("P/N"), and whether any
// were.
func (r *Runtime) Firewall(network string) ([]firewall.Rule, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rules, ok := r.firewalls[network]
	return rules, ok
}

// Cluster returns a copy of what runs of the cluster with that name, or
// nil.
func (r *Runtime) Cluster(name string) *Cluster {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clusters {
		if c.Name == name {
			cp := *c
			cp.Nodes, cp.PodCIDRs, cp.Replaced = maps.Clone(c.Nodes), maps.Clone(c.PodCIDRs), maps.Clone(c.Replaced)
			return &cp
		}
	}
	return nil
}

// Clusters names the clusters that run.
func (r *Runtime) Clusters() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.clusters {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return out
}

// Calls are the calls made so far, in order.
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// enter runs the hook; ctx may be nil for calls that take none.
func (r *Runtime) enter(ctx context.Context, call string, s cluster.Spec) error {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	hook := r.Hook
	r.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	if hook != nil {
		return hook(ctx, call, s)
	}
	return nil
}

// change runs the hook, then f on the cluster's state, which must exist.
func (r *Runtime) change(ctx context.Context, call string, s cluster.Spec, f func(c *Cluster) error) error {
	if err := r.enter(ctx, call, s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.running(s)
	if err != nil {
		return err
	}
	return f(c)
}

// running returns the cluster's state, which must exist.
func (r *Runtime) running(s cluster.Spec) (*Cluster, error) {
	c, ok := r.clusters[s.ID]
	if !ok {
		return nil, fmt.Errorf("fakeruntime: cluster %s (%s) has no control plane", s.Name, s.ID)
	}
	return c, nil
}

func (r *Runtime) Start(ctx context.Context) error        { return r.enter(ctx, "Start", cluster.Spec{}) }
func (r *Runtime) Close(bool)                             {}
func (r *Runtime) InUse(addr netip.Addr, port int) bool   { return false }
func (r *Runtime) JoinedReplicas(s cluster.Spec) []string { return nil }

func (r *Runtime) EnsureControlPlane(ctx context.Context, s cluster.Spec) error {
	if err := r.enter(ctx, "EnsureControlPlane", s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.clusters[s.ID]
	if !ok {
		c = &Cluster{Name: s.Name, Nodes: map[string]cluster.Node{}, PodCIDRs: map[string]string{}, Replaced: map[int]int{}}
		r.clusters[s.ID] = c
	}
	c.Endpoint = s.Endpoint()
	return nil
}

func (r *Runtime) CheckHealthy(ctx context.Context, s cluster.Spec) error {
	if err := r.enter(ctx, "CheckHealthy", s); err != nil {
		return err
	}
	if r.Unhealthy[s.Name] {
		return fmt.Errorf("%w; not healthy: %s-etcd-0", cluster.ErrWouldLoseQuorum, s.Name)
	}
	return nil
}

func (r *Runtime) ReplaceHost(ctx context.Context, s cluster.Spec, h controlplane.Host) error {
	return r.change(ctx, "ReplaceHost", s, func(c *Cluster) error {
		c.Replaced[h.Index]++
		return nil
	})
}

func (r *Runtime) SetIntraNodeVisibility(ctx context.Context, s cluster.Spec, on bool) error {
	return r.change(ctx, "SetIntraNodeVisibility", s, func(c *Cluster) error {
		c.IntraNodeVisibility = on
		return nil
	})
}

func (r *Runtime) EnsureAccess(ctx context.Context, s cluster.Spec) error {
	return r.change(ctx, "EnsureAccess", s, func(c *Cluster) error {
		c.Allow = slices.Clone(s.AuthorizedNetworks)
		return nil
	})
}

func (r *Runtime) Destroy(s cluster.Spec) error {
	if err := r.enter(nil, "Destroy", s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.clusters, s.ID)
	return nil
}

func (r *Runtime) EnsureNodes(ctx context.Context, s cluster.Spec, nodes []cluster.Node, token string) error {
	return r.change(ctx, "EnsureNodes", s, func(c *Cluster) error {
		if token == "" {
			return fmt.Errorf("fakeruntime: nodes of %s join without a token", s.Name)
		}
		for _, n := range nodes {
			c.Nodes[n.Name] = n
		}
		return nil
	})
}

func (r *Runtime) RemoveNode(ctx context.Context, s cluster.Spec, name string) error {
	return r.change(ctx, "RemoveNode", s, func(c *Cluster) error {
		delete(c.Nodes, name)
		delete(c.PodCIDRs, name)
		return nil
	})
}

// ScaleDNS has nothing to scale: the fake runs no cluster DNS.
func (r *Runtime) ScaleDNS(ctx context.Context, s cluster.Spec) error {
	return r.enter(ctx, "ScaleDNS", s)
}

// PodCIDR gives each node the next block of the cluster's pod range, as
// kube-controller-manager does.
func (r *Runtime) PodCIDR(ctx context.Context, s cluster.Spec, node string) (string, error) {
	var cidr string
	err := r.change(ctx, "PodCIDR", s, func(c *Cluster) error {
		if _, ok := c.Nodes[node]; !ok {
			return fmt.Errorf("fakeruntime: node %s of %s does not run", node, s.Name)
		}
		if cidr = c.PodCIDRs[node]; cidr != "" {
			return nil
		}
		pods, err := netip.ParsePrefix(s.PodCIDR)
		if err != nil {
			return err
		}
		base := pods.Addr().As4()
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		v += uint32(c.podBlocks) << (32 - s.NodeMaskSize)
		c.podBlocks++
		cidr = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), s.NodeMaskSize).String()
		c.PodCIDRs[node] = cidr
		return nil
	})
	return cidr, err
}

func (r *Runtime) CreateToken(ctx context.Context, s cluster.Spec, t join.Token) (join.BootstrapToken, error) {
	var tok join.BootstrapToken
	err := r.change(ctx, "CreateToken", s, func(c *Cluster) error {
		tok = join.BootstrapToken{Token: fmt.Sprintf("abcdef.%016d", len(c.Tokens))}
		if t.TTL > 0 {
			tok.Expires = time.Now().Add(t.TTL).UTC().Truncate(time.Second)
		}
		c.Tokens = append(c.Tokens, tok)
		return nil
	})
	return tok, err
}

func (r *Runtime) UploadCerts(ctx context.Context, s cluster.Spec, key string) error {
	return r.change(ctx, "UploadCerts", s, func(c *Cluster) error {
		c.UploadedKey = key
		return nil
	})
}

// CA is the PEM every fake cluster's CA certificate reads as.
const CA = "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"

func (r *Runtime) CACertificate(s cluster.Spec) ([]byte, error) {
	if err := r.enter(nil, "CACertificate", s); err != nil {
		return nil, err
	}
	return []byte(CA), nil
}

func (r *Runtime) CAPin(s cluster.Spec) (string, error) {
	if err := r.enter(nil, "CAPin", s); err != nil {
		return "", err
	}
	return "sha256:" + fmt.Sprintf("%064d", 0), nil
}

func (r *Runtime) AdminKubeconfig(s cluster.Spec) ([]byte, error) {
	if err := r.enter(nil, "AdminKubeconfig", s); err != nil {
		return nil, err
	}
	return []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: " + s.Name + "\n  cluster:\n    server: https://" + s.Endpoint() + "\n"), nil
}

func (r *Runtime) NewCARotation(s cluster.Spec, serviceAccountKeys bool, now time.Time) (*cluster.CARotation, error) {
	if err := r.enter(nil, "NewCARotation", s); err != nil {
		return nil, err
	}
	rot := &cluster.CARotation{Phase: cluster.CATrustBoth, OldCA: []byte(CA), NewCA: []byte("new " + CA), NewCAKey: []byte("key"), Cross: []byte("cross")}
	if serviceAccountKeys {
		rot.OldSAPub, rot.NewSAKey = []byte("old sa"), []byte("new sa")
	}
	return rot, nil
}

func (r *Runtime) WriteCAPhase(s cluster.Spec, rot *cluster.CARotation) error {
	return r.enter(nil, "WriteCAPhase", s)
}

func (r *Runtime) RotateCA(ctx context.Context, s cluster.Spec, rot *cluster.CARotation, say func(string)) error {
	err := r.change(ctx, "RotateCA", s, func(c *Cluster) error {
		c.CAPhase = rot.Phase
		return nil
	})
	if err == nil {
		say(fmt.Sprintf("%s applied", rot.Phase))
	}
	return err
}
