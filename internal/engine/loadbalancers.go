package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// LoadBalancerRecord is the load balancer of a cluster's LoadBalancer
// Service, as the engine keeps it: its address (held as an allocation in
// the same transaction) and what the Compute API shows of it, a
// forwarding rule with its target pool (external) or backend service
// (internal).
type LoadBalancerRecord struct {
	// Name is the forwarding rule's: "a" and the Service's UID without
	// dashes, 32 characters, as GKE names it.
	Name    string `json:"name"`
	Project string `json:"project"`
	Region  string `json:"region"`
	// Cluster is the cluster's record key, ClusterUID its UID.
	Cluster    string `json:"cluster"`
	ClusterUID string `json:"clusterUID"`
	// Namespace, Service and UID are the Service's.
	Namespace string           `json:"namespace"`
	Service   string           `json:"service"`
	UID       string           `json:"uid"`
	IP        string           `json:"ip"`
	Internal  bool             `json:"internal,omitempty"`
	Ports     []cluster.LBPort `json:"ports"`
	Created   time.Time        `json:"created"`
	// Allocation is the allocation key that holds IP.
	Allocation string `json:"allocation"`
}

func (lb *LoadBalancerRecord) key() string {
	return path.Join("loadbalancers", lb.Project, lb.Region, lb.Name)
}

// forwardingRuleName is GKE's name for a Service's forwarding rule.
func forwardingRuleName(uid string) string {
	name := "a" + strings.ReplaceAll(uid, "-", "")
	return name[:min(len(name), 32)]
}

// followLoadBalancers gives every LoadBalancer Service of the running
// clusters its load balancer, and takes away those of Services that went:
// at once when a cluster's Services or endpoints change, and every
// interval to catch up with what failed.
func (e *Engine) followLoadBalancers(ctx context.Context, every time.Duration) {
	follow(ctx, every, e.lbNudge, func() { e.syncLoadBalancers(ctx) })
}

// nudgeLoadBalancers makes the follower look again now.
func (e *Engine) nudgeLoadBalancers() {
	select {
	case e.lbNudge <- struct{}{}:
	default:
	}
}

func (e *Engine) syncLoadBalancers(ctx context.Context) {
	clusters, err := e.listClusters(ctx, "clusters/")
	if err != nil {
		return
	}
	records, err := store.ListAs[LoadBalancerRecord](ctx, e.store, "loadbalancers/")
	if err != nil {
		return
	}
	byCluster := map[string][]*LoadBalancerRecord{}
	for _, lb := range records {
		byCluster[lb.ClusterUID] = append(byCluster[lb.ClusterUID], lb)
	}
	for _, r := range clusters {
		held := byCluster[r.UID]
		delete(byCluster, r.UID)
		if r.Cluster.Status != "RUNNING" && r.Cluster.Status != "RECONCILING" {
			continue
		}
		if err := e.syncClusterLoadBalancers(ctx, r, held); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("load balancers", "cluster", r.key(), "err", err)
		}
	}
	// The clusters of what is left are gone: their frontends went with
	// them; the records and addresses go now.
	for _, lbs := range byCluster {
		for _, lb := range lbs {
			e.dropLoadBalancer(ctx, lb)
		}
	}
}

// syncClusterLoadBalancers serves the cluster's LoadBalancer Services and
// releases what its records hold for Services that went.
func (e *Engine) syncClusterLoadBalancers(ctx context.Context, r *ClusterRecord, held []*LoadBalancerRecord) error {
	s := e.spec(r)
	if err := e.runtime.FollowServices(s, e.nudgeLoadBalancers); err != nil {
		return err
	}
	lbs, ok := e.runtime.LoadBalancerServices(s)
	if !ok {
		return nil // not listed yet
	}
	byUID := map[string]*LoadBalancerRecord{}
	for _, lb := range held {
		byUID[lb.UID] = lb
	}
	for _, svc := range lbs {
		rec := byUID[svc.UID]
		delete(byUID, svc.UID)
		moved := rec != nil && (rec.Internal != svc.Internal || svc.RequestedIP != "" && svc.RequestedIP != rec.IP)
		if rec != nil && (svc.Releasing || moved) {
			if err := e.releaseLoadBalancer(ctx, s, rec); err != nil {
				return err
			}
			rec = nil
		}
		if svc.Releasing {
			// Its record went already (or it never had one): the finalizer.
			if err := e.runtime.ReleaseLoadBalancer(ctx, s, svc.Namespace, svc.Name, svc.UID, netip.Addr{}, false); err != nil {
				return err
			}
			continue
		}
		if rec == nil {
			var err error
			var refused addressRefused
			if rec, err = e.newLoadBalancer(ctx, r, svc); errors.As(err, &refused) {
				if err := e.runtime.LoadBalancerFailed(ctx, s, svc, refused.msg); err != nil {
					return err
				}
				continue // the others are served all the same
			} else if err != nil {
				return err
			}
		}
		ip, err := netip.ParseAddr(rec.IP)
		if err != nil {
			return err
		}
		if err := e.runtime.ServeLoadBalancer(ctx, s, svc, ip); err != nil {
			return err
		}
		if ports := portsOnly(svc.Ports); !samePorts(ports, rec.Ports) {
			rec.Ports = ports
			if err := e.store.Commit(ctx, store.Write{Key: rec.key(), Value: rec, Revision: store.Any}); err != nil {
				return err
			}
		}
	}
	// Services that are gone altogether (their finalizer removed by hand).
	for _, rec := range byUID {
		if err := e.releaseLoadBalancer(ctx, s, rec); err != nil {
			return err
		}
	}
	return nil
}

// newLoadBalancer takes an address for the Service's load balancer (an
// external one from the engine's loopback pool, an internal one from the
// cluster's subnetwork) and stores its record with the address's
// allocation, in one transaction.
func (e *Engine) newLoadBalancer(ctx context.Context, r *ClusterRecord, svc cluster.ServiceLB) (*LoadBalancerRecord, error) {
	a, err := e.newAllocator(ctx)
	if err != nil {
		return nil, err
	}
	kind, within := "loadbalancer", e.cfg.LoadBalancerPool
	var ports []int // an external address is skipped where they are served
	if svc.Internal {
		if within, err = r.nodeRange(); err != nil {
			return nil, err
		}
		kind = r.nodeIPKind()
	} else {
		for _, p := range svc.Ports {
			ports = append(ports, int(p.Port))
		}
	}
	ip, err := lbAddress(a, kind, within, ports, svc.RequestedIP)
	if err != nil {
		return nil, err
	}
	loc, _ := ParseLocation(r.Location)
	rec := &LoadBalancerRecord{
		Name: forwardingRuleName(svc.UID), Project: r.Project, Region: loc.Region,
		Cluster: r.key(), ClusterUID: r.UID, Namespace: svc.Namespace, Service: svc.Name, UID: svc.UID,
		IP: ip.String(), Internal: svc.Internal, Ports: portsOnly(svc.Ports), Created: e.cfg.Clock.Now(), Allocation: a.got[0],
	}
	err = e.store.Commit(ctx,
		store.Write{Key: rec.key(), Value: rec, Revision: store.Absent},
		store.Write{Key: rec.Allocation, Value: rec.key(), Revision: store.Absent})
	return rec, err
}

// addressRefused is why a Service cannot have the address it asks for,
// or any: its users are told (an event), it is no failure of the engine's.
type addressRefused struct{ msg string }

func (e addressRefused) Error() string { return e.msg }

// lbAddress takes a load balancer's address in within: the one the
// Service asks for (spec.loadBalancerIP), or else the next free one; the
// first two (the network's and its gateway's) are never handed out.
func lbAddress(a *allocator, kind string, within netip.Prefix, ports []int, requested string) (netip.Addr, error) {
	if requested == "" {
		ip, err := a.ip(kind, within, 2, ports...)
		if err != nil {
			return ip, addressRefused{err.Error()}
		}
		return ip, nil
	}
	ip, err := netip.ParseAddr(requested)
	switch {
	case err != nil || !ip.Is4():
		return netip.Addr{}, addressRefused{fmt.Sprintf("spec.loadBalancerIP %q is not an IPv4 address.", requested)}
	case !within.Contains(ip) || ip.Less(within.Addr().Next().Next()):
		return netip.Addr{}, addressRefused{fmt.Sprintf("spec.loadBalancerIP %s is outside %s, where this load balancer's addresses come from.", ip, within)}
	case !a.takeFree(kind, ip, ports):
		return netip.Addr{}, addressRefused{fmt.Sprintf("spec.loadBalancerIP %s is in use.", ip)}
	}
	return ip, nil
}

// releaseLoadBalancer stops serving a load balancer, then drops its
// record and address.
func (e *Engine) releaseLoadBalancer(ctx context.Context, s cluster.Spec, rec *LoadBalancerRecord) error {
	ip, _ := netip.ParseAddr(rec.IP)
	if err := e.runtime.ReleaseLoadBalancer(ctx, s, rec.Namespace, rec.Service, rec.UID, ip, rec.Internal); err != nil {
		return err
	}
	e.dropLoadBalancer(ctx, rec)
	return nil
}

// dropLoadBalancer deletes a load balancer's record and frees its address.
func (e *Engine) dropLoadBalancer(ctx context.Context, rec *LoadBalancerRecord) {
	err := e.store.Commit(ctx, store.Write{Key: rec.key(), Revision: store.Any}, store.Write{Key: rec.Allocation, Revision: store.Any})
	if err != nil {
		e.cfg.Logger.Warn("load balancers", "drop", rec.key(), "err", err)
	}
}

// portsOnly are the ports without their backends, as the record keeps them.
func portsOnly(ports []cluster.LBPort) []cluster.LBPort {
	out := make([]cluster.LBPort, 0, len(ports))
	for _, p := range ports {
		out = append(out, cluster.LBPort{Protocol: p.Protocol, Port: p.Port})
	}
	return out
}

func samePorts(a, b []cluster.LBPort) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Protocol != b[i].Protocol || a[i].Port != b[i].Port {
			return false
		}
	}
	return true
}

// A load balancer in the Compute API, as GKE creates one for a Service:
// a forwarding rule per protocol its ports use, on its address, with a
// target pool of the cluster's nodes (external) or a regional backend
// service of its node pools' instance groups (internal). Read only: the
// Service is what users change.

// loadBalancersOf lists a project's load balancers in region ("": all).
func (e *Engine) loadBalancersOf(ctx context.Context, project, region string) ([]*LoadBalancerRecord, error) {
	prefix := "loadbalancers/" + project + "/"
	if region != "" {
		prefix += vpc.ResourceName(region) + "/"
	}
	return store.ListAs[LoadBalancerRecord](ctx, e.store, prefix)
}

// lbCluster is the cluster of a load balancer (nil: gone).
func (e *Engine) lbCluster(ctx context.Context, rec *LoadBalancerRecord) *ClusterRecord {
	var r ClusterRecord
	if _, err := e.store.Get(ctx, rec.Cluster, &r); err != nil {
		return nil
	}
	return &r
}

// lbDescription is what GKE writes in the description of a Service's
// load balancer resources.
func lbDescription(rec *LoadBalancerRecord) string {
	return fmt.Sprintf(`{"kubernetes.io/service-name":"%s/%s"}`, rec.Namespace, rec.Service)
}

func (e *Engine) regionBase(project, region string) string {
	return e.cfg.BaseURL + "/compute/v1/projects/" + project + "/regions/" + region
}

func lbID(parts ...string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strings.Join(parts, "/")))
	return h.Sum64()
}

// forwardingRules are a load balancer's forwarding rules: one for each
// protocol of its ports (TCP's first, under the record's name).
func (e *Engine) forwardingRules(ctx context.Context, rec *LoadBalancerRecord) []*compute.ForwardingRule {
	base := e.regionBase(rec.Project, rec.Region)
	byProto := map[string][]int64{}
	var protos []string
	for _, p := range rec.Ports {
		if _, ok := byProto[p.Protocol]; !ok {
			protos = append(protos, p.Protocol)
		}
		byProto[p.Protocol] = append(byProto[p.Protocol], int64(p.Port))
	}
	sort.SliceStable(protos, func(i, j int) bool { return protos[i] == "TCP" && protos[j] != "TCP" })
	r := e.lbCluster(ctx, rec)
	var out []*compute.ForwardingRule
	for i, proto := range protos {
		name := rec.Name
		if i > 0 {
			name = rec.Name[:min(len(rec.Name), 28)] + "-" + strings.ToLower(proto)
		}
		ports := byProto[proto]
		slices.Sort(ports)
		fr := &compute.ForwardingRule{
			Kind: "compute#forwardingRule", Id: lbID(rec.key(), proto), Name: name, Description: lbDescription(rec),
			CreationTimestamp: rec.Created.Format(time.RFC3339), Region: base, SelfLink: base + "/forwardingRules/" + name,
			IPAddress: rec.IP, IPProtocol: proto, NetworkTier: "PREMIUM",
		}
		if rec.Internal {
			fr.LoadBalancingScheme, fr.BackendService = "INTERNAL", base+"/backendServices/"+rec.Name
			for _, p := range ports {
				fr.Ports = append(fr.Ports, fmt.Sprint(p))
			}
			if r != nil {
				fr.Network = e.vpc.NetworkURL(r.Project, vpc.ResourceName(r.Cluster.Network))
				fr.Subnetwork = e.vpc.SubnetURL(r.Project, rec.Region, r.Cluster.Subnetwork)
			}
		} else {
			fr.LoadBalancingScheme, fr.Target = "EXTERNAL", base+"/targetPools/"+rec.Name
			fr.PortRange = fmt.Sprintf("%d-%d", ports[0], ports[len(ports)-1])
		}
		out = append(out, fr)
	}
	return out
}

// ListForwardingRules lists a project's forwarding rules in region ("":
// every region).
func (e *Engine) ListForwardingRules(ctx context.Context, project, region string) ([]*compute.ForwardingRule, error) {
	recs, err := e.loadBalancersOf(ctx, project, region)
	if err != nil {
		return nil, err
	}
	out := []*compute.ForwardingRule{}
	for _, rec := range recs {
		out = append(out, e.forwardingRules(ctx, rec)...)
	}
	return out, nil
}

// GetForwardingRule returns one forwarding rule.
func (e *Engine) GetForwardingRule(ctx context.Context, project, region, name string) (*compute.ForwardingRule, error) {
	all, err := e.ListForwardingRules(ctx, project, region)
	return named(all, err, func(x *compute.ForwardingRule) string { return x.Name }, project, region, "forwardingRules", name)
}

// ListTargetPools lists the target pools of a project's external load
// balancers in region ("": every region): the cluster's nodes.
func (e *Engine) ListTargetPools(ctx context.Context, project, region string) ([]*compute.TargetPool, error) {
	recs, err := e.loadBalancersOf(ctx, project, region)
	if err != nil {
		return nil, err
	}
	out := []*compute.TargetPool{}
	for _, rec := range recs {
		if rec.Internal {
			continue
		}
		base := e.regionBase(rec.Project, rec.Region)
		tp := &compute.TargetPool{
			Kind: "compute#targetPool", Id: lbID(rec.key(), "pool"), Name: rec.Name, Description: lbDescription(rec),
			CreationTimestamp: rec.Created.Format(time.RFC3339), Region: base, SelfLink: base + "/targetPools/" + rec.Name,
			SessionAffinity: "NONE", Instances: []string{},
		}
		if r := e.lbCluster(ctx, rec); r != nil {
			for _, p := range r.Cluster.NodePools {
				for i, n := range r.Nodes[p.Name] {
					tp.Instances = append(tp.Instances, e.instance(r, p.Config.MachineType, nodeZone(p.Locations, i), n).SelfLink)
				}
			}
		}
		out = append(out, tp)
	}
	return out, nil
}

// GetTargetPool returns one target pool.
func (e *Engine) GetTargetPool(ctx context.Context, project, region, name string) (*compute.TargetPool, error) {
	all, err := e.ListTargetPools(ctx, project, region)
	return named(all, err, func(x *compute.TargetPool) string { return x.Name }, project, region, "targetPools", name)
}

// ListBackendServices lists the regional backend services of a project's
// internal load balancers in region ("": every region): the cluster's
// node pools' instance groups.
func (e *Engine) ListBackendServices(ctx context.Context, project, region string) ([]*compute.BackendService, error) {
	recs, err := e.loadBalancersOf(ctx, project, region)
	if err != nil {
		return nil, err
	}
	out := []*compute.BackendService{}
	for _, rec := range recs {
		if !rec.Internal {
			continue
		}
		base := e.regionBase(rec.Project, rec.Region)
		proto := "TCP"
		if len(rec.Ports) > 0 {
			proto = rec.Ports[0].Protocol
		}
		bs := &compute.BackendService{
			Kind: "compute#backendService", Id: lbID(rec.key(), "backend"), Name: rec.Name, Description: lbDescription(rec),
			CreationTimestamp: rec.Created.Format(time.RFC3339), Region: base, SelfLink: base + "/backendServices/" + rec.Name,
			LoadBalancingScheme: "INTERNAL", Protocol: proto, SessionAffinity: "NONE",
		}
		if r := e.lbCluster(ctx, rec); r != nil {
			for _, p := range r.Cluster.NodePools {
				for _, url := range p.InstanceGroupUrls {
					bs.Backends = append(bs.Backends, &compute.Backend{Group: e.instanceGroup(r, p, url).Group.SelfLink, BalancingMode: "CONNECTION"})
				}
			}
		}
		out = append(out, bs)
	}
	return out, nil
}

// GetBackendService returns one backend service.
func (e *Engine) GetBackendService(ctx context.Context, project, region, name string) (*compute.BackendService, error) {
	all, err := e.ListBackendServices(ctx, project, region)
	return named(all, err, func(x *compute.BackendService) string { return x.Name }, project, region, "backendServices", name)
}

// named is the item called name of a regional list, or NOT_FOUND as
// Compute Engine says it.
func named[T any](all []T, err error, nameOf func(T) string, project, region, kind, name string) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	for _, x := range all {
		if nameOf(x) == name {
			return x, nil
		}
	}
	return zero, status.Errorf(status.NotFound, "The resource 'projects/%s/regions/%s/%s/%s' was not found", project, region, kind, name)
}
