package vpc

import (
	"context"
	"errors"
	"testing"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// newService returns a Service over a store of its own, with project p's
// custom network vpc1 and its subnetwork sub1 (10.10.0.0/20, secondary
// range pods 10.20.0.0/16) in us-central1.
func newService(t *testing.T) *Service {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Config{Store: st, Clock: &clock.Offset{}, BaseURL: "http://x/compute/v1/", Regions: []string{"us-central1"}})
	ctx := context.Background()
	if _, err := s.InsertNetwork(ctx, "p", &compute.Network{Name: "vpc1"}); err != nil {
		t.Fatal(err)
	}
	sub := &compute.Subnetwork{Name: "sub1", Network: "vpc1", IpCidrRange: "10.10.0.0/20",
		SecondaryIpRanges: []*compute.SubnetworkSecondaryRange{{RangeName: "pods", IpCidrRange: "10.20.0.0/16"}}}
	if _, err := s.InsertSubnet(ctx, "p", "us-central1", sub); err != nil {
		t.Fatal(err)
	}
	return s
}

// wantField checks that err is INVALID_ARGUMENT naming field.
func wantField(t *testing.T, what string, err error, field string) {
	t.Helper()
	var e *status.Error
	if !errors.As(err, &e) || e.Code != status.InvalidArgument {
		t.Errorf("%s: got %v, want INVALID_ARGUMENT on %s", what, err, field)
		return
	}
	if e.Field != field {
		t.Errorf("%s: %v names %q, not %s", what, err, e.Field, field)
	}
}

func TestSubnetPatchKeepsIdentity(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		patch SubnetPatch
		field string
	}{
		{"rename", SubnetPatch{Name: "sub2"}, "resource.name"},
		{"move", SubnetPatch{Network: "default"}, "resource.network"},
		{"new primary range", SubnetPatch{IPCidrRange: "10.10.0.0/19"}, "resource.ipCidrRange"},
	} {
		_, err := s.PatchSubnet(ctx, "p", "us-central1", "sub1", tc.patch)
		wantField(t, tc.name, err, tc.field)
	}
	sub, err := s.GetSubnet(ctx, "p", "us-central1", "sub1")
	if err != nil || sub.Name != "sub1" || sub.IpCidrRange != "10.10.0.0/20" || ResourceName(sub.Network) != "vpc1" {
		t.Fatalf("after refused patches: %+v %v", sub, err)
	}
	// What a client sends back unchanged is no change.
	if _, err := s.PatchSubnet(ctx, "p", "us-central1", "sub1", SubnetPatch{Name: "sub1", Network: sub.Network, IPCidrRange: "10.10.0.0/20"}); err != nil {
		t.Fatal(err)
	}
}

func TestEgressRuleHasNoSourceTags(t *testing.T) {
	s := newService(t)
	fw := &compute.Firewall{Name: "e", Network: "vpc1", Direction: "EGRESS", DestinationRanges: []string{"10.0.0.0/8"},
		SourceTags: []string{"web"}, Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp"}}}
	_, err := s.InsertFirewall(context.Background(), "p", fw, nil)
	wantField(t, "egress rule with source tags", err, "resource.sourceTags")
}

func TestAdvertisedRangesNeedCustomMode(t *testing.T) {
	s := newService(t)
	r := &compute.Router{Name: "r", Network: "vpc1", Bgp: &compute.RouterBgp{Asn: 64512,
		AdvertisedIpRanges: []*compute.RouterAdvertisedIpRange{{Range: "10.0.0.0/8"}}}}
	_, err := s.InsertRouter(context.Background(), "p", "us-central1", r)
	wantField(t, "advertised ranges in DEFAULT mode", err, "resource.bgp.advertisedIpRanges")
}

// A cluster's managed peering is ACTIVE at once, keeps new ranges off the
// control-plane range, and goes without a trace; both are idempotent.
func TestManagedPeering(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	m := ManagedPeering{Project: "p", Network: "vpc1", Name: "gke-c-1234abcd-peer", TenantProject: "gke-prod-us-central1-1234",
		TenantNetwork: "gke-n1234abcd-net", Region: "us-central1", ControlPlaneRange: "172.16.0.32/28"}
	for range 2 {
		if err := s.EnsureManagedPeering(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.GetNetwork(ctx, "p", "vpc1")
	if err != nil || len(n.Peerings) != 1 || n.Peerings[0].State != "ACTIVE" || n.Peerings[0].Name != m.Name {
		t.Fatalf("vpc1 peerings: %+v %v", n.Peerings, err)
	}
	used, err := s.UsedRanges(ctx, "p", "vpc1")
	if err != nil || len(used) != 3 {
		t.Fatalf("used ranges %+v %v: want sub1's two and the control plane's", used, err)
	}
	sub := &compute.Subnetwork{Name: "over", Network: "vpc1", IpCidrRange: "172.16.0.0/24"}
	_, err = s.InsertSubnet(ctx, "p", "us-central1", sub)
	wantField(t, "a subnetwork over the control plane", err, "resource.ipCidrRange")
	for range 2 {
		if err := s.RemoveManagedPeering(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.GetNetwork(ctx, "p", "vpc1"); len(n.Peerings) != 0 {
		t.Fatalf("peerings left: %+v", n.Peerings)
	}
	left, err := store.ListAs[compute.Route](ctx, s.cfg.Store, "vpc/routes/"+m.TenantProject+"/")
	if err != nil || len(left) != 0 {
		t.Fatalf("the managed network's routes are left: %d %v", len(left), err)
	}
	if _, err := s.GetNetwork(ctx, m.TenantProject, m.TenantNetwork); !status.Is(err, status.NotFound) {
		t.Fatalf("the managed network is left: %v", err)
	}
}

func TestClusterSecondaryRanges(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	add := []*compute.SubnetworkSecondaryRange{{RangeName: "gke-c-pods-1234abcd", IpCidrRange: "10.0.0.0/14"}}
	for range 2 {
		if err := s.AddSecondaryRanges(ctx, "p", "us-central1", "sub1", add); err != nil {
			t.Fatal(err)
		}
	}
	over := []*compute.SubnetworkSecondaryRange{{RangeName: "gke-d-pods-1234abcd", IpCidrRange: "10.1.0.0/16"}}
	if err := s.AddSecondaryRanges(ctx, "p", "us-central1", "sub1", over); err == nil {
		t.Fatal("an overlapping cluster range was added")
	}
	if err := s.RemoveSecondaryRanges(ctx, "p", "us-central1", "sub1", []string{"gke-c-pods-1234abcd", "gone"}); err != nil {
		t.Fatal(err)
	}
	sub, _ := s.GetSubnet(ctx, "p", "us-central1", "sub1")
	if len(sub.SecondaryIpRanges) != 1 || sub.SecondaryIpRanges[0].RangeName != "pods" {
		t.Fatalf("secondary ranges: %+v", sub.SecondaryIpRanges)
	}
}

// Flow log settings: Compute Engine's values are checked by name, and
// CUSTOM_METADATA, which would not be honoured, is refused; a refused
// patch changes nothing.
func TestFlowLogConfig(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	on := true
	for _, tc := range []struct {
		name  string
		cfg   compute.SubnetworkLogConfig
		field string
	}{
		{"interval", compute.SubnetworkLogConfig{Enable: true, AggregationInterval: "INTERVAL_2_SEC"}, "resource.logConfig.aggregationInterval"},
		{"sampling", compute.SubnetworkLogConfig{Enable: true, FlowSampling: 1.5}, "resource.logConfig.flowSampling"},
		{"custom metadata", compute.SubnetworkLogConfig{Enable: true, Metadata: "CUSTOM_METADATA", MetadataFields: []string{"src_instance"}}, "resource.logConfig.metadata"},
	} {
		_, err := s.PatchSubnet(ctx, "p", "us-central1", "sub1", SubnetPatch{EnableFlowLogs: &on, LogConfig: &tc.cfg})
		wantField(t, tc.name, err, tc.field)
	}
	if sub, err := s.GetSubnet(ctx, "p", "us-central1", "sub1"); err != nil || sub.EnableFlowLogs {
		t.Errorf("after refused patches: flow logs %v (%v)", sub.EnableFlowLogs, err)
	}
	if _, err := s.PatchSubnet(ctx, "p", "us-central1", "sub1", SubnetPatch{EnableFlowLogs: &on, LogConfig: &compute.SubnetworkLogConfig{Enable: true, AggregationInterval: "INTERVAL_30_SEC"}}); err != nil {
		t.Fatal(err)
	}
	if sub, _ := s.GetSubnet(ctx, "p", "us-central1", "sub1"); sub.LogConfig.AggregationInterval != "INTERVAL_30_SEC" || sub.LogConfig.FlowSampling != 0.5 {
		t.Errorf("log config: %+v", sub.LogConfig)
	}
}
