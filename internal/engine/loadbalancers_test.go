package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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

	// As the Compute API shows them: a forwarding rule each, with a target
	// pool of the cluster's nodes (external) or a backend service of its
	// instance groups (internal).
	rules, err := g.e.ListForwardingRules(ctx, project, "")
	if err != nil || len(rules) != 2 {
		t.Fatalf("forwarding rules: %v %v", rules, err)
	}
	for _, fr := range rules {
		switch fr.Name {
		case forwardingRuleName(web.UID):
			if fr.IPAddress != served[web.UID].String() || fr.LoadBalancingScheme != "EXTERNAL" || fr.PortRange != "80-80" || !strings.HasSuffix(fr.Target, "/regions/us-central1/targetPools/"+fr.Name) {
				t.Errorf("web-lb's forwarding rule: %+v", fr)
			}
		case forwardingRuleName(ilb.UID):
			if fr.IPAddress != served[ilb.UID].String() || fr.LoadBalancingScheme != "INTERNAL" || !slices.Equal(fr.Ports, []string{"80"}) || !strings.HasSuffix(fr.BackendService, "/backendServices/"+fr.Name) || fr.Subnetwork == "" {
				t.Errorf("web-ilb's forwarding rule: %+v", fr)
			}
		default:
			t.Errorf("forwarding rule %s", fr.Name)
		}
		if fr.Description != `{"kubernetes.io/service-name":"default/`+map[string]string{forwardingRuleName(web.UID): "web-lb", forwardingRuleName(ilb.UID): "web-ilb"}[fr.Name]+`"}` {
			t.Errorf("description %s", fr.Description)
		}
	}
	pools, err := g.e.ListTargetPools(ctx, project, "us-central1")
	if err != nil || len(pools) != 1 || len(pools[0].Instances) != 1 {
		t.Errorf("target pools: %+v %v", pools, err)
	}
	backends, err := g.e.ListBackendServices(ctx, project, "us-central1")
	if err != nil || len(backends) != 1 || len(backends[0].Backends) != 1 || backends[0].LoadBalancingScheme != "INTERNAL" {
		t.Errorf("backend services: %+v %v", backends, err)
	}
	if _, err := g.e.GetForwardingRule(ctx, project, "us-central1", "nothing"); err == nil {
		t.Error("a forwarding rule that does not exist was found")
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
