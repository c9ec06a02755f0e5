package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/store"
)

// A LoadBalancer Service gets an address of its own, from the engine's
// pool (external) or the cluster's subnetwork (internal), held with its
// record; a Service that goes gives them back, as does a cluster deleted
// with its Services.
func TestLoadBalancers(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("lbs", 1)
	web := cluster.ServiceLB{Namespace: "default", Name: "web-lb", UID: "6f9a0c1e-1111-2222-3333-444455556666", Ports: []cluster.LBPort{{Protocol: "TCP", Port: 80}}}
	ilb := cluster.ServiceLB{Namespace: "default", Name: "web-ilb", UID: "7f9a0c1e-1111-2222-3333-444455556666", Internal: true, Ports: []cluster.LBPort{{Protocol: "TCP", Port: 80}}}
	g.rt.SetServices("lbs", []cluster.ServiceLB{web, ilb})
	var served map[string]netip.Addr
	g.eventually("both served", func() error {
		if served = g.rt.Served("lbs"); len(served) != 2 {
			return fmt.Errorf("served: %v", served)
		}
		return nil
	})
	if ip := served[web.UID]; !g.e.cfg.LoadBalancerPool.Contains(ip) {
		t.Errorf("the external load balancer is at %s, outside the pool %s", ip, g.e.cfg.LoadBalancerPool)
	}
	if ip := served[ilb.UID]; !netip.MustParsePrefix(g.cluster("lbs").NodeRange).Contains(ip) {
		t.Errorf("the internal load balancer is at %s, outside the subnetwork %s", ip, g.cluster("lbs").NodeRange)
	}
	recs, err := store.ListAs[LoadBalancerRecord](ctx, g.e.store, "loadbalancers/")
	if err != nil || len(recs) != 2 {
		t.Fatalf("records: %v %v", recs, err)
	}
	for _, rec := range recs {
		if rec.Name != forwardingRuleName(rec.UID) || len(rec.Name) != 32 || rec.Region != "us-central1" {
			t.Errorf("record %+v", rec)
		}
		var owner string
		if _, err := g.e.store.Get(ctx, rec.Allocation, &owner); err != nil || owner != rec.key() {
			t.Errorf("%s's address %s is held by %q: %v", rec.Service, rec.Allocation, owner, err)
		}
	}

	web.Releasing = true
	g.rt.SetServices("lbs", []cluster.ServiceLB{web, ilb})
	g.eventually("web-lb released", func() error {
		if served := g.rt.Served("lbs"); len(served) != 1 {
			return fmt.Errorf("served: %v", served)
		}
		recs, _ := store.ListAs[LoadBalancerRecord](ctx, g.e.store, "loadbalancers/")
		if len(recs) != 1 || recs[0].UID != ilb.UID {
			return fmt.Errorf("records: %v", recs)
		}
		return nil
	})
	if slices.ContainsFunc(g.rt.LoadBalancerServicesOf("lbs"), func(lb cluster.ServiceLB) bool { return lb.UID == web.UID }) {
		t.Error("the released Service still holds its finalizer")
	}

	g.wait(g.e.DeleteCluster(ctx, project, zone, "lbs"))
	g.eventually("records and addresses gone", func() error {
		recs, _ := store.ListAs[LoadBalancerRecord](ctx, g.e.store, "loadbalancers/")
		items, _ := g.e.store.List(ctx, "allocations/")
		if len(recs) > 0 || len(items) > 0 {
			return fmt.Errorf("records %v, allocations %v", recs, items)
		}
		return nil
	})
}
