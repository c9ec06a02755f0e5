package engine

import (
	"context"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/store"
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
		if rec != nil && (svc.Releasing || rec.Internal != svc.Internal) {
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
			if rec, err = e.newLoadBalancer(ctx, r, svc); err != nil {
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
	var ip netip.Addr
	if svc.Internal {
		subnet, err := r.nodeRange()
		if err != nil {
			return nil, err
		}
		ip, err = a.ip(r.nodeIPKind(), subnet, 2)
		if err != nil {
			return nil, err
		}
	} else {
		var ports []int
		for _, p := range svc.Ports {
			ports = append(ports, int(p.Port))
		}
		if ip, err = a.ip("loadbalancer", e.cfg.LoadBalancerPool, 2, ports...); err != nil {
			return nil, err
		}
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
