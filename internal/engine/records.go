package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	compute "google.golang.org/api/compute/v1"
	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/sharedetcd"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// ClusterRecord is a cluster as the engine stores it: the API object users
// see, plus what the engine needs to run it.
type ClusterRecord struct {
	Cluster  *container.Cluster `json:"cluster"`
	Project  string             `json:"project"`
	Location string             `json:"location"`
	UID      string             `json:"uid"`
	// EndpointIP and HostIPs are the loopback addresses of the load
	// balancer frontend and of each control-plane replica.
	EndpointIP   string   `json:"endpointIP"`
	EndpointPort int      `json:"endpointPort,omitempty"`
	HostIPs      []string `json:"hostIPs"`
	// EtcdHostIPs are the external etcd members' addresses (external etcd
	// topology only).
	EtcdHostIPs []string `json:"etcdHostIPs,omitempty"`
	// SharedEtcdIP is the shared etcd's address (shared etcd topology
	// only).
	SharedEtcdIP string `json:"sharedEtcdIP,omitempty"`
	// PrivateEndpointIP is a private cluster's private endpoint (equal to
	// EndpointIP when it has no public one).
	PrivateEndpointIP string `json:"privateEndpointIP,omitempty"`
	// NodeRange is the primary range of the cluster's subnetwork, where
	// its nodes' internal addresses come from.
	NodeRange string `json:"nodeRange,omitempty"`
	// InternalEndpointIP is the cluster's endpoint inside its VPC network,
	// an address of NodeRange: where nodes and pods reach the API (the
	// "kubernetes" Service's endpoint).
	InternalEndpointIP string `json:"internalEndpointIP,omitempty"`
	// ManagedRanges are the secondary ranges GKE added to the subnetwork
	// for the cluster; they go with it.
	ManagedRanges []*compute.SubnetworkSecondaryRange `json:"managedRanges,omitempty"`
	// Nodes lists each pool's nodes, by pool name.
	Nodes map[string][]NodeRecord `json:"nodes"`
	// Retiring are nodes replaced by a recreation, still to be drained.
	Retiring []NodeRecord `json:"retiring,omitempty"`
	// IPRotation is the IP rotation in progress, if any.
	IPRotation *IPRotation `json:"ipRotation,omitempty"`
	// CARotation is the cluster CA rotation in progress, if any: its
	// phase and the CAs and keys it rolls in (see cluster.CARotation).
	CARotation *cluster.CARotation `json:"caRotation,omitempty"`
	// Operation is the operation running on the cluster, if any: the
	// engine runs one at a time per cluster.
	Operation string `json:"operation,omitempty"`
	// BootstrapToken is the token node agents join with.
	BootstrapToken        string    `json:"bootstrapToken,omitempty"`
	BootstrapTokenExpires time.Time `json:"bootstrapTokenExpires,omitzero"`
	// Allocations are the allocation keys (addresses, ranges) this
	// cluster holds. Each is a key of its own in the store, whose value
	// names the cluster; writes keeps the two in step.
	Allocations []string `json:"allocations"`
	Creator     string   `json:"creator"`

	// held is Allocations as last read from or written to the store.
	held []string
}

// writes are the writes that store r over revision rev (store.Absent for
// a new cluster): the record, and in the same transaction the allocation
// keys it took since it was read (guarded: absent, so that two clusters
// never take one) and those it gave up. An address is thus never held by
// a record that does not list it, nor listed without being held.
func (r *ClusterRecord) writes(rev int64) []store.Write {
	out := []store.Write{{Key: r.key(), Value: r, Revision: rev}}
	held := map[string]bool{}
	for _, k := range r.held {
		held[k] = true
	}
	want := map[string]bool{}
	for _, k := range r.Allocations {
		if !want[k] && !held[k] {
			out = append(out, store.Write{Key: k, Value: r.key(), Revision: store.Absent})
		}
		want[k] = true
	}
	for _, k := range r.held {
		if !want[k] {
			out = append(out, store.Write{Key: k, Revision: store.Any})
		}
	}
	return out
}

// deletion is the writes that delete r and free everything it holds.
func (r *ClusterRecord) deletion(rev int64) []store.Write {
	r.Allocations = nil
	out := r.writes(rev)
	out[0].Value = nil
	return out
}

// committed records that r is stored as it is.
func (r *ClusterRecord) committed() { r.held = slices.Clone(r.Allocations) }

// NodeRecord is one node of a pool.
type NodeRecord struct {
	Name       string `json:"name"`
	InternalIP string `json:"internalIP"`
	// KubeletIP is the loopback address where kube-apiserver reaches the
	// node's kubelet endpoint (logs, exec): never the simulated InternalIP.
	KubeletIP string `json:"kubeletIP"`
	// Endpoint is the cluster endpoint IP the node joined through, and
	// talks to until it is recreated.
	Endpoint string `json:"endpoint,omitempty"`
}

// allocations are the allocation keys a node of r holds.
func (n NodeRecord) allocations(r *ClusterRecord) []string {
	return []string{"allocations/" + r.nodeIPKind() + "/" + n.InternalIP, "allocations/host/" + n.KubeletIP}
}

// networkName is the cluster's VPC network as the runtime names it: "P/N".
func (r *ClusterRecord) networkName() string {
	return r.Project + "/" + vpc.ResourceName(r.Cluster.Network)
}

// nodeIPKind is the allocation kind of the cluster's node addresses: one
// per network, as no two subnetworks of a network overlap.
func (r *ClusterRecord) nodeIPKind() string {
	return "nodeip/" + r.Project + "/" + vpc.ResourceName(r.Cluster.Network)
}

func clusterKey(project, location, name string) string {
	return path.Join("clusters", project, location, name)
}

func operationKey(project, location, name string) string {
	return path.Join("operations", project, location, name)
}

func (r *ClusterRecord) key() string { return clusterKey(r.Project, r.Location, r.Cluster.Name) }

// pool returns the record's node pool called name, or nil.
func (r *ClusterRecord) pool(name string) *container.NodePool {
	for _, p := range r.Cluster.NodePools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// spec turns a record into what the cluster runtime runs.
func (e *Engine) spec(r *ClusterRecord) cluster.Spec {
	var hosts []controlplane.Host
	for i, ip := range r.HostIPs {
		hosts = append(hosts, controlplane.Host{Index: i, IP: net.ParseIP(ip)})
	}
	var etcdHosts []controlplane.Host
	for i, ip := range r.EtcdHostIPs {
		etcdHosts = append(etcdHosts, controlplane.Host{Index: i, IP: net.ParseIP(ip), EtcdOnly: true})
	}
	c := r.Cluster
	nodeRange, _ := r.nodeRange()
	return cluster.Spec{
		Cluster: controlplane.Cluster{
			Name:       c.Name,
			Dir:        filepath.Join(e.cfg.DataDir, "clusters", r.UID),
			EndpointIP: net.ParseIP(r.EndpointIP),
			// A record from before clusters had one has none (nil).
			InternalEndpointIP: net.ParseIP(r.InternalEndpointIP),
			ServiceCIDR:        c.ServicesIpv4Cidr,
			PodCIDR:            c.ClusterIpv4Cidr,
			NodeMaskSize:       32 - podRangeBits(c.DefaultMaxPodsConstraint),
			AuthnWebhookURL:    e.cfg.BaseURL + "/internal/authn",
			LoneEtcd:           len(r.HostIPs) == 1 && len(r.EtcdHostIPs) == 0 && r.SharedEtcdIP == "", // zonal, etcd of its own
			EtcdPrefix:         r.etcdPrefix(),
		},
		ID:                 r.UID,
		Hosts:              hosts,
		OldEndpointIP:      oldEndpoint(r),
		PrivateEndpointIP:  r.separatePrivateEndpoint(),
		AuthorizedNetworks: r.authorizedPrefixes(),
		NodeSources:        r.nodeSources(),
		EtcdHosts:          etcdHosts,
		SharedEtcdIP:       net.ParseIP(r.SharedEtcdIP),
		EndpointPort:       r.EndpointPort,
		Creator:            r.Creator,
		Network:            r.networkName(),
		NodeRange:          nodeRange,
	}
}

// etcdPrefix is where the cluster's kube-apiserver keeps its objects: under
// the cluster's prefix on the shared etcd, upstream's default on its own.
func (r *ClusterRecord) etcdPrefix() string {
	if r.SharedEtcdIP == "" {
		return ""
	}
	return sharedetcd.Prefix(r.UID) + "registry"
}

// separatePrivateEndpoint is the private endpoint when it is a frontend of
// its own (the cluster has a public endpoint too).
func (r *ClusterRecord) separatePrivateEndpoint() net.IP {
	if r.PrivateEndpointIP == "" || r.PrivateEndpointIP == r.EndpointIP {
		return nil
	}
	return net.ParseIP(r.PrivateEndpointIP)
}

// nodeSources are the addresses the cluster's nodes connect from.
func (r *ClusterRecord) nodeSources() []net.IP {
	var out []net.IP
	for _, nodes := range r.Nodes {
		for _, n := range nodes {
			out = append(out, net.ParseIP(n.KubeletIP))
		}
	}
	for _, n := range r.Retiring {
		out = append(out, net.ParseIP(n.KubeletIP))
	}
	return out
}

// podRangeBits gives the host bits of a node's pod range: GKE sizes it to
// hold twice the maximum pods per node (110 pods: a /24).
func podRangeBits(maxPods *container.MaxPodsConstraint) int {
	pods := int64(110)
	if maxPods != nil && maxPods.MaxPodsPerNode > 0 {
		pods = maxPods.MaxPodsPerNode
	}
	bits := 0
	for (int64(1) << bits) < 2*pods {
		bits++
	}
	return bits
}

// getCluster reads a cluster record and its revision.
func (e *Engine) getCluster(ctx context.Context, project, location, name string) (*ClusterRecord, int64, error) {
	var r ClusterRecord
	rev, err := e.store.Get(ctx, clusterKey(project, location, name), &r)
	if err != nil {
		return nil, 0, err
	}
	r.committed()
	return &r, rev, nil
}

// clusterOf reads the record of the cluster op works on.
func (e *Engine) clusterOf(ctx context.Context, op *operations.Record) (*ClusterRecord, error) {
	r, _, err := e.getCluster(ctx, op.Project, op.Location, op.ClusterName)
	return r, err
}

// updateCluster applies change to the stored record, with the
// allocations it takes or frees, retrying on conflict: change runs again
// on the record as it is then, so what it allocates is allocated afresh.
func (e *Engine) updateCluster(ctx context.Context, project, location, name string, change func(*ClusterRecord) error) (*ClusterRecord, error) {
	for {
		r, rev, err := e.getCluster(ctx, project, location, name)
		if err != nil {
			return nil, err
		}
		if err := change(r); err != nil {
			return nil, err
		}
		err = e.store.Commit(ctx, r.writes(rev)...)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r.committed()
		return r, nil
	}
}

// listClusters returns every cluster record under prefix.
func (e *Engine) listClusters(ctx context.Context, prefix string) ([]*ClusterRecord, error) {
	out, err := store.ListAs[ClusterRecord](ctx, e.store, prefix)
	for _, r := range out {
		r.committed()
	}
	return out, err
}

// lookupCluster is getCluster for API calls: a missing cluster is the
// NOT_FOUND users see.
func (e *Engine) lookupCluster(ctx context.Context, project, location, name string) (*ClusterRecord, int64, error) {
	r, rev, err := e.getCluster(ctx, project, location, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, status.Errorf(status.NotFound, "Not found: projects/%s/locations/%s/clusters/%s.", project, location, name)
	}
	return r, rev, err
}

// allocator hands out addresses and ranges; each one is an "allocations/..."
// key, taken in the same transaction that stores the cluster, so two creates
// never get the same one.
type allocator struct {
	taken map[string]bool
	got   []string
	// listening reports whether something already serves on addr:port;
	// such addresses are skipped, so that two engines on one machine with
	// the same ranges do not hand out the same loopback address.
	listening func(addr netip.Addr, port int) bool
}

func (e *Engine) newAllocator(ctx context.Context) (*allocator, error) {
	items, err := e.store.List(ctx, "allocations/")
	if err != nil {
		return nil, err
	}
	a := &allocator{taken: map[string]bool{}, listening: e.runtime.InUse}
	for _, it := range items {
		a.taken[it.Key] = true
	}
	return a, nil
}

// sharedEtcdKey holds the shared etcd's address: taken from the host pool
// by the first cluster that needs it, and kept for good.
const sharedEtcdKey = "sharedetcd"

// sharedEtcdAddress is the shared etcd's address and, the first time, the
// writes that take it (with the cluster's, so that two first clusters at
// once do not take two).
func (e *Engine) sharedEtcdAddress(ctx context.Context, a *allocator) (string, []store.Write, error) {
	var ip string
	_, err := e.store.Get(ctx, sharedEtcdKey, &ip)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return ip, nil, err
	}
	// The address is the engine's, not the cluster's: it stays when the
	// cluster goes.
	addr, key, err := a.engineIP("host", e.cfg.HostPool, 2, controlplane.EtcdClientPort, controlplane.EtcdPeerPort)
	if err != nil {
		return "", nil, status.Errorf(status.FailedPrecondition, "%v", err)
	}
	return addr.String(), []store.Write{
		{Key: sharedEtcdKey, Value: addr.String(), Revision: store.Absent},
		{Key: key, Value: sharedEtcdKey, Revision: store.Absent},
	}, nil
}

// ip takes the next free address of prefix (skipping the first `skip`);
// with ports, an address where one of them is already served is skipped.
func (a *allocator) ip(kind string, prefix netip.Prefix, skip int, ports ...int) (netip.Addr, error) {
	addr := prefix.Addr()
	for range skip {
		addr = addr.Next()
	}
	for ; prefix.Contains(addr); addr = addr.Next() {
		if a.takeFree(kind, addr, ports) {
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("engine: no free %s address in %s", kind, prefix)
}

// engineIP is ip for an address the engine holds rather than the cluster
// being allocated for: it returns the address's allocation key, which is
// not among the cluster's (got).
func (a *allocator) engineIP(kind string, prefix netip.Prefix, skip int, ports ...int) (netip.Addr, string, error) {
	addr, err := a.ip(kind, prefix, skip, ports...)
	if err != nil {
		return addr, "", err
	}
	key := a.got[len(a.got)-1]
	a.got = a.got[:len(a.got)-1]
	return addr, key, nil
}

// takeFree takes addr if no allocation holds it and none of ports is
// served there.
func (a *allocator) takeFree(kind string, addr netip.Addr, ports []int) bool {
	key := "allocations/" + kind + "/" + addr.String()
	if a.taken[key] || a.anyListening(addr, ports) {
		return false
	}
	a.taken[key] = true
	a.got = append(a.got, key)
	return true
}

func (a *allocator) anyListening(addr netip.Addr, ports []int) bool {
	for _, p := range ports {
		if a.listening != nil && a.listening(addr, p) {
			return true
		}
	}
	return false
}

// block takes the next free block of size bits within within.
func (a *allocator) block(kind string, within netip.Prefix, bits int) (netip.Prefix, error) {
	return a.blockAvoiding(kind, within, bits, nil)
}

// blockAvoiding takes the next block of size bits within within that
// overlaps neither avoid nor any block of kind already taken (of any size).
func (a *allocator) blockAvoiding(kind string, within netip.Prefix, bits int, avoid []netip.Prefix) (netip.Prefix, error) {
	avoid = append(avoid, a.blocks(kind)...)
	step := uint32(1) << (32 - bits)
	base := be32(within.Addr())
	end := base + uint32(1)<<(32-within.Bits())
	for start := base; start < end && start >= base; start += step {
		p := netip.PrefixFrom(fromBE32(start), bits)
		if !slices.ContainsFunc(avoid, p.Overlaps) && a.claim(kind, p) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("engine: no free /%d %s block in %s", bits, kind, within)
}

// claim takes block p of kind, unless a block of kind overlapping it is
// taken.
func (a *allocator) claim(kind string, p netip.Prefix) bool {
	if slices.ContainsFunc(a.blocks(kind), p.Overlaps) {
		return false
	}
	key := blockKey(kind, p)
	a.taken[key] = true
	a.got = append(a.got, key)
	return true
}

func blockKey(kind string, p netip.Prefix) string {
	return "allocations/" + kind + "/" + strings.ReplaceAll(p.String(), "/", "_")
}

// blocks are the blocks of kind taken.
func (a *allocator) blocks(kind string) []netip.Prefix {
	prefix := "allocations/" + kind + "/"
	var out []netip.Prefix
	for key := range a.taken {
		if rest, ok := strings.CutPrefix(key, prefix); ok && !strings.Contains(rest, "/") {
			if p, err := netip.ParsePrefix(strings.ReplaceAll(rest, "_", "/")); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromBE32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// oldEndpoint is the endpoint an IP rotation still serves, or nil.
func oldEndpoint(r *ClusterRecord) net.IP {
	if r.IPRotation == nil || r.IPRotation.Completing {
		return nil
	}
	return net.ParseIP(r.IPRotation.OldEndpointIP)
}
