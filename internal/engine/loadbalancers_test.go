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

// TestLoadBalancerRequestedIP: spec.loadBalancerIP is honoured when it is
// free in the pool (external) or the subnetwork (internal), and moves the
// load balancer when it changes; otherwise the Service's users are told
// why, and nothing is held for it.
func TestLoadBalancerRequestedIP(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("lbs", 1)
	at := func(p netip.Prefix, n int) netip.Addr {
		a := p.Addr()
		for range n {
			a = a.Next()
		}
		return a
	}
	subnet := netip.MustParsePrefix(g.cluster("lbs").NodeRange)
	ports := []cluster.LBPort{{Protocol: "TCP", Port: 80}}
	// The UIDs differ in their first characters, as random ones do:
	// forwarding rules are named after the first 31.
	asks := cluster.ServiceLB{Namespace: "default", Name: "asks", UID: "10000000-0000-0000-0000-000000000000", Ports: ports, RequestedIP: at(g.e.cfg.LoadBalancerPool, 100).String()}
	ilb := cluster.ServiceLB{Namespace: "default", Name: "ilb", UID: "20000000-0000-0000-0000-000000000000", Ports: ports, Internal: true, RequestedIP: at(subnet, 50).String()}
	refused := map[string]cluster.ServiceLB{
		"outside":       {Namespace: "default", Name: "outside", UID: "30000000-0000-0000-0000-000000000000", Ports: ports, RequestedIP: "10.0.0.1"},
		"in use":        {Namespace: "default", Name: "taken", UID: "40000000-0000-0000-0000-000000000000", Ports: ports, RequestedIP: asks.RequestedIP},
		"not an IPv4":   {Namespace: "default", Name: "nonsense", UID: "50000000-0000-0000-0000-000000000000", Ports: ports, RequestedIP: "nonsense"},
		"the gateway's": {Namespace: "default", Name: "gateway", UID: "60000000-0000-0000-0000-000000000000", Ports: ports, Internal: true, RequestedIP: at(subnet, 1).String()},
	}
	all := []cluster.ServiceLB{asks, ilb}
	for _, lb := range refused {
		all = append(all, lb)
	}
	g.rt.SetServices("lbs", all)
	g.eventually("served where asked, the others told why", func() error {
		served := g.rt.Served("lbs")
		if len(served) != 2 || served[asks.UID].String() != asks.RequestedIP || served[ilb.UID].String() != ilb.RequestedIP {
			return fmt.Errorf("served: %v; the internal one was told %q", served, g.rt.LoadBalancerFailures("lbs", ilb.UID))
		}
		for why, lb := range refused {
			if got := g.rt.LoadBalancerFailures("lbs", lb.UID); len(got) != 1 || !strings.Contains(got[0], lb.RequestedIP) {
				return fmt.Errorf("%s (%s) was told %q", lb.Name, why, got)
			}
		}
		return nil
	})
	if got := g.rt.LoadBalancerFailures("lbs", refused["in use"].UID)[0]; !strings.Contains(got, "in use") {
		t.Errorf("an address in use: %q", got)
	}
	if got := g.rt.LoadBalancerFailures("lbs", refused["outside"].UID)[0]; !strings.Contains(got, "outside "+g.e.cfg.LoadBalancerPool.String()) {
		t.Errorf("an address outside the pool: %q", got)
	}
	if recs, _ := store.ListAs[LoadBalancerRecord](ctx, g.e.store, "loadbalancers/"); len(recs) != 2 {
		t.Errorf("records: %v", recs)
	}

	// A new spec.loadBalancerIP moves the load balancer, and frees the old
	// address.
	old := asks.RequestedIP
	asks.RequestedIP = at(g.e.cfg.LoadBalancerPool, 101).String()
	g.rt.SetServices("lbs", []cluster.ServiceLB{asks, ilb})
	g.eventually("moved", func() error {
		if served := g.rt.Served("lbs"); served[asks.UID].String() != asks.RequestedIP {
			return fmt.Errorf("served: %v", served)
		}
		items, _ := g.e.store.List(ctx, "allocations/loadbalancer/")
		if len(items) != 1 || !strings.HasSuffix(items[0].Key, "/"+asks.RequestedIP) {
			return fmt.Errorf("allocations: %v (the old %s)", items, old)
		}
		return nil
	})
}
