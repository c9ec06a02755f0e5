package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/poll"
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
