package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
)

func blocks(cidrs ...string) *container.MasterAuthorizedNetworksConfig {
	cfg := &container.MasterAuthorizedNetworksConfig{Enabled: true}
	for _, c := range cidrs {
		cfg.CidrBlocks = append(cfg.CidrBlocks, &container.CidrBlock{CidrBlock: c})
	}
	return cfg
}

func TestAuthorizedNetworksChecks(t *testing.T) {
	many := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("10.%d.0.0/16", i))
		}
		return out
	}
	cases := []struct {
		name        string
		cfg         *container.MasterAuthorizedNetworksConfig
		privateOnly bool
		field       string // "" when accepted
	}{
		{"none", nil, false, ""},
		{"ranges", blocks("127.77.0.0/16", "203.0.113.7/32"), false, ""},
		{"everyone on a public endpoint", blocks("0.0.0.0/0"), false, ""},
		{"everyone on a private endpoint only", blocks("0.0.0.0/0"), true, "f.cidrBlocks[0].cidrBlock"},
		{"not a range", blocks("127.77.0.0/16", "nope"), false, "f.cidrBlocks[1].cidrBlock"},
		{"host bits", blocks("127.77.0.1/16"), false, "f.cidrBlocks[0].cidrBlock"},
		{"IPv6", blocks("2001:db8::/32"), false, "f.cidrBlocks[0].cidrBlock"},
		{"50 on a public endpoint", blocks(many(50)...), false, ""},
		{"51 on a public endpoint", blocks(many(51)...), false, "f.cidrBlocks"},
		{"100 on a private endpoint only", blocks(many(100)...), true, ""},
		{"given but not enabled", &container.MasterAuthorizedNetworksConfig{CidrBlocks: blocks("10.0.0.0/8").CidrBlocks}, false, "f.enabled"},
	}
	for _, tc := range cases {
		err := authorizedNetworks("f", tc.cfg, tc.privateOnly)
		var apiErr *status.Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &apiErr) || apiErr.Code != status.InvalidArgument || apiErr.Field != tc.field):
			t.Errorf("%s: got %v, want INVALID_ARGUMENT on %s", tc.name, err, tc.field)
		}
	}
}

// The newer form of "no public endpoint" (ipEndpointsConfig.enablePublicEndpoint
// given false) makes a cluster with a private endpoint only; given true
// beside enablePrivateEndpoint it is refused; an update may not turn it
// around, and a refused one changes nothing.
func TestPublicEndpointGiven(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	private := func(public bool) func(*container.Cluster) {
		return func(c *container.Cluster) {
			c.IpAllocationPolicy = &container.IPAllocationPolicy{UseIpAliases: true}
			c.PrivateClusterConfig = &container.PrivateClusterConfig{EnablePrivateNodes: true, MasterIpv4CidrBlock: "172.16.0.32/28"}
			c.ControlPlaneEndpointsConfig = &container.ControlPlaneEndpointsConfig{IpEndpointsConfig: &container.IPEndpointsConfig{
				EnablePublicEndpoint: public, ForceSendFields: []string{"EnablePublicEndpoint"}}}
		}
	}
	g.createCluster("priv", 1, private(false))
	if r := g.cluster("priv"); !r.privateOnly() || r.EndpointIP != r.PrivateEndpointIP {
		t.Fatalf("enablePublicEndpoint=false: private only %v, endpoint %s, private endpoint %s", r.privateOnly(), r.EndpointIP, r.PrivateEndpointIP)
	}
	c := &container.Cluster{Name: "both", NodePools: []*container.NodePool{{Name: "p", InitialNodeCount: 1}}}
	private(true)(c)
	c.PrivateClusterConfig.EnablePrivateEndpoint = true
	_, err := g.e.CreateCluster(ctx, project, zone, c)
	if st := status.From(err); st == nil || st.Field != "cluster.controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint" {
		t.Errorf("a public endpoint and a private endpoint only: %v", err)
	}
	before := g.cluster("priv")
	for _, public := range []bool{true} {
		u := &container.ClusterUpdate{DesiredControlPlaneEndpointsConfig: &container.ControlPlaneEndpointsConfig{IpEndpointsConfig: &container.IPEndpointsConfig{
			EnablePublicEndpoint: public, ForceSendFields: []string{"EnablePublicEndpoint"},
			AuthorizedNetworksConfig: blocks("127.0.0.0/8")}}}
		_, err := g.e.UpdateCluster(ctx, project, zone, "priv", u)
		if st := status.From(err); st == nil || st.Field != "update.desiredControlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint" {
			t.Errorf("turning the public endpoint on: %v", err)
		}
	}
	if after := g.cluster("priv"); after.Cluster.MasterAuthorizedNetworksConfig.Enabled != before.Cluster.MasterAuthorizedNetworksConfig.Enabled || after.Operation != "" {
		t.Error("a refused update changed the cluster")
	}
	// The same update saying what is so goes through.
	u := &container.ClusterUpdate{DesiredControlPlaneEndpointsConfig: &container.ControlPlaneEndpointsConfig{IpEndpointsConfig: &container.IPEndpointsConfig{
		ForceSendFields: []string{"EnablePublicEndpoint"}, AuthorizedNetworksConfig: blocks("127.0.0.0/8")}}}
	g.wait(g.e.UpdateCluster(ctx, project, zone, "priv", u))
}

// A maintenance policy given at create is checked as setMaintenancePolicy
// checks it (the field named under cluster.) and reported as GKE reports
// it; without one, the cluster still has a policy with its version.
func TestMaintenancePolicyAtCreate(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("plain", 1)
	if p := g.cluster("plain").Cluster.MaintenancePolicy; p == nil || p.ResourceVersion == "" || p.Window != nil {
		t.Errorf("no policy given: %+v", p)
	}
	window := func(start string) func(*container.Cluster) {
		return func(c *container.Cluster) {
			c.MaintenancePolicy = &container.MaintenancePolicy{Window: &container.MaintenanceWindow{DailyMaintenanceWindow: &container.DailyMaintenanceWindow{StartTime: start}}}
		}
	}
	g.createCluster("windowed", 1, window("03:00"))
	if p := g.cluster("windowed").Cluster.MaintenancePolicy; p.ResourceVersion == "" || p.Window.DailyMaintenanceWindow.Duration != "PT4H0M0S" {
		t.Errorf("a daily window: %+v", p.Window.DailyMaintenanceWindow)
	}
	c := &container.Cluster{Name: "bad", NodePools: []*container.NodePool{{Name: "p", InitialNodeCount: 1}}}
	window("25:99")(c)
	_, err := g.e.CreateCluster(ctx, project, zone, c)
	if st := status.From(err); st == nil || st.Field != "cluster.maintenancePolicy.window.dailyMaintenanceWindow.startTime" {
		t.Errorf("a bad window at create: %v", err)
	}
}
