package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	compute "google.golang.org/api/compute/v1"
	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/poll"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// A network with a cluster gets its firewall rules, GKE's for the cluster
// among them, and a rule inserted or deleted through the Compute API
// reaches the runtime at once (the follower's interval is 5 s).
func TestFirewallRulesReachTheRuntime(t *testing.T) {
	g := newRig(t)
	g.start()
	g.createCluster("fw", 1)
	names := func() ([]string, error) {
		rules, ok := g.rt.Firewall(project + "/default")
		if !ok {
			return nil, fmt.Errorf("no firewall set for the default network")
		}
		var out []string
		for _, r := range rules {
			out = append(out, r.Name)
		}
		return out, nil
	}
	g.eventually("GKE's rules", func() error {
		got, err := names()
		if err == nil && !slices.ContainsFunc(got, func(n string) bool { return len(n) > 4 && n[len(n)-4:] == "-all" }) {
			err = fmt.Errorf("rules %v", got)
		}
		return err
	})
	deny := &compute.Firewall{Name: "deny-8080", Network: "default", Denied: []*compute.FirewallDenied{{IPProtocol: "tcp", Ports: []string{"8080"}}}, SourceRanges: []string{"10.0.0.0/8"}}
	if _, err := g.e.VPC().InsertFirewall(context.Background(), project, deny, nil); err != nil {
		t.Fatal(err)
	}
	within := func(what string, ok func([]firewall.Rule) bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := poll.Until(ctx, func(context.Context) error {
			rules, _ := g.rt.Firewall(project + "/default")
			if !ok(rules) {
				return fmt.Errorf("not yet")
			}
			return nil
		}); err != nil {
			t.Errorf("%s within a second: %v", what, err)
		}
	}
	has := func(rules []firewall.Rule) bool {
		return slices.ContainsFunc(rules, func(r firewall.Rule) bool { return r.Name == "deny-8080" && r.Deny })
	}
	within("the inserted rule", has)
	if _, err := g.e.VPC().DeleteFirewall(context.Background(), project, "deny-8080"); err != nil {
		t.Fatal(err)
	}
	within("the deletion", func(rules []firewall.Rule) bool { return !has(rules) })
}

// A routes-based cluster's routes to its nodes' pod ranges reach the
// runtime; one deleted through the Compute API is gone from it within a
// second.
func TestRoutesReachTheRuntime(t *testing.T) {
	g := newRig(t)
	g.createCluster("rb", 2, routesBased)
	r := g.cluster("rb")
	hops := func() []string {
		var out []string
		for _, rt := range g.rt.Routes(project + "/default") {
			out = append(out, rt.NextHop.String())
		}
		slices.Sort(out)
		return out
	}
	var want []string
	for _, n := range r.Nodes["default-pool"] {
		want = append(want, n.InternalIP)
	}
	slices.Sort(want)
	g.eventually("the nodes' routes", func() error {
		if got := hops(); !slices.Equal(got, want) {
			return fmt.Errorf("routes to %v, want %v", got, want)
		}
		return nil
	})
	gone := r.Nodes["default-pool"][0]
	if _, err := g.e.VPC().DeleteRoute(context.Background(), project, r.nodeRouteName(gone.Name)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := poll.Until(ctx, func(context.Context) error {
		if got := hops(); slices.Contains(got, gone.InternalIP) || len(got) != 1 {
			return fmt.Errorf("routes to %v", got)
		}
		return nil
	}); err != nil {
		t.Errorf("a deleted route within a second: %v", err)
	}
}

// Peered networks with clusters reach each other's subnetwork ranges
// (primary and secondary: the pods') through the peering, once both sides
// peered; a peering removed takes the routes away.
func TestPeeringRoutesReachTheRuntime(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	if _, err := g.e.VPC().InsertNetwork(ctx, project, &compute.Network{Name: "vpc2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.e.VPC().InsertSubnet(ctx, project, "us-central1", &compute.Subnetwork{Name: "sub2", Network: "vpc2", IpCidrRange: "172.20.0.0/20"}); err != nil {
		t.Fatal(err)
	}
	g.createCluster("one", 1)
	g.createCluster("two", 1, func(c *container.Cluster) {
		c.Network, c.Subnetwork = "vpc2", "sub2"
		c.IpAllocationPolicy = &container.IPAllocationPolicy{UseIpAliases: true, ClusterIpv4CidrBlock: "10.60.0.0/14", ServicesIpv4CidrBlock: "10.64.0.0/20"}
	})
	peered := func(network, dst, peer string) bool {
		for _, r := range g.rt.Routes(project + "/" + network) {
			if r.Dst.String() == dst && r.Peer == project+"/"+peer {
				return true
			}
		}
		return false
	}
	peer := func(network, to string) {
		t.Helper()
		if _, err := g.e.VPC().AddPeering(ctx, project, network, &compute.NetworkPeering{Name: "to-" + to, Network: "projects/" + project + "/global/networks/" + to}, vpc.PeeringChange{}); err != nil {
			t.Fatal(err)
		}
	}
	peer("default", "vpc2")
	time.Sleep(100 * time.Millisecond)
	if peered("default", "172.20.0.0/20", "vpc2") {
		t.Error("routes through a peering the other side has not made")
	}
	peer("vpc2", "default")
	g.eventually("routes through the peering", func() error {
		if !peered("default", "172.20.0.0/20", "vpc2") || !peered("default", "10.60.0.0/14", "vpc2") || !peered("vpc2", "10.128.0.0/20", "default") {
			return fmt.Errorf("default %v, vpc2 %v", g.rt.Routes(project+"/default"), g.rt.Routes(project+"/vpc2"))
		}
		return nil
	})
	if _, err := g.e.VPC().RemovePeering(ctx, project, "default", "to-vpc2"); err != nil {
		t.Fatal(err)
	}
	g.eventually("the peering's routes gone", func() error {
		if peered("default", "172.20.0.0/20", "vpc2") || peered("vpc2", "10.128.0.0/20", "default") {
			return fmt.Errorf("default %v, vpc2 %v", g.rt.Routes(project+"/default"), g.rt.Routes(project+"/vpc2"))
		}
		return nil
	})
}
