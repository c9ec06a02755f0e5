package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gapic "cloud.google.com/go/container/apiv1"
	"cloud.google.com/go/container/apiv1/containerpb"
	"golang.org/x/oauth2"
	compute "google.golang.org/api/compute/v1"
	gke "google.golang.org/api/container/v1"
	"google.golang.org/api/option"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestGoClientLibraries: Google's Go client libraries, pointed at the
// engine as at Google, create, read, update and delete a network, a
// subnetwork, a firewall rule, a cluster and a node pool: the
// discovery-based google.golang.org/api (compute/v1, container/v1) and the
// REST client generated from the protos (cloud.google.com/go/container,
// which sends enums as numbers).
func TestGoClientLibraries(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	token := option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: e.Token()}))
	base := "http://" + e.Addr
	cmp, err := compute.NewService(ctx, option.WithEndpoint(base+"/compute/v1/"), token)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := gke.NewService(ctx, option.WithEndpoint(base+"/"), token)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := gapic.NewClusterManagerRESTClient(ctx, option.WithEndpoint(base), token)
	if err != nil {
		t.Fatal(err)
	}
	defer rest.Close()
	p, region := e.Project, "us-central1"
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Compute: a custom network, a subnetwork with secondary ranges, a
	// firewall rule; each read back and changed.
	_, err = cmp.Networks.Insert(p, &compute.Network{Name: "libs-vpc", ForceSendFields: []string{"AutoCreateSubnetworks"}}).Context(ctx).Do()
	must("insert network", err)
	net, err := cmp.Networks.Get(p, "libs-vpc").Context(ctx).Do()
	must("get network", err)
	if net.AutoCreateSubnetworks || net.RoutingConfig.RoutingMode != "REGIONAL" {
		t.Errorf("network: %+v", net)
	}
	_, err = cmp.Subnetworks.Insert(p, region, &compute.Subnetwork{Name: "libs-sub", Network: net.SelfLink, IpCidrRange: "10.70.0.0/20",
		SecondaryIpRanges: []*compute.SubnetworkSecondaryRange{{RangeName: "pods", IpCidrRange: "10.72.0.0/16"}, {RangeName: "services", IpCidrRange: "10.73.0.0/20"}}}).Context(ctx).Do()
	must("insert subnetwork", err)
	sub, err := cmp.Subnetworks.Get(p, region, "libs-sub").Context(ctx).Do()
	must("get subnetwork", err)
	_, err = cmp.Subnetworks.Patch(p, region, "libs-sub", &compute.Subnetwork{Fingerprint: sub.Fingerprint, PrivateIpGoogleAccess: true}).Context(ctx).Do()
	must("patch subnetwork", err)
	if sub, err = cmp.Subnetworks.Get(p, region, "libs-sub").Context(ctx).Do(); err != nil || !sub.PrivateIpGoogleAccess {
		t.Errorf("patched subnetwork: %+v %v", sub, err)
	}
	_, err = cmp.Firewalls.Insert(p, &compute.Firewall{Name: "libs-fw", Network: net.SelfLink, SourceRanges: []string{"10.0.0.0/8"},
		Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: []string{"80"}}}}).Context(ctx).Do()
	must("insert firewall", err)
	_, err = cmp.Firewalls.Patch(p, "libs-fw", &compute.Firewall{SourceRanges: []string{"10.70.0.0/20"}}).Context(ctx).Do()
	must("patch firewall", err)
	if fw, err := cmp.Firewalls.Get(p, "libs-fw").Context(ctx).Do(); err != nil || fw.SourceRanges[0] != "10.70.0.0/20" || fw.Priority != 1000 {
		t.Errorf("patched firewall: %+v %v", fw, err)
	}

	// A cluster through the generated REST client: its enums go as
	// numbers, and come back.
	zone := "us-central1-a"
	parent := fmt.Sprintf("projects/%s/locations/%s", p, zone)
	waitREST := func(op *containerpb.Operation, err error) {
		t.Helper()
		must("start operation", err)
		for op.Status != containerpb.Operation_DONE {
			time.Sleep(200 * time.Millisecond)
			op, err = rest.GetOperation(ctx, &containerpb.GetOperationRequest{Name: parent + "/operations/" + op.Name})
			must("get operation", err)
		}
		if op.Error != nil {
			t.Fatalf("operation %s: %v", op.Name, op.Error)
		}
	}
	waitREST(rest.CreateCluster(ctx, &containerpb.CreateClusterRequest{Parent: parent, Cluster: &containerpb.Cluster{
		Name: "libs", Network: "libs-vpc", Subnetwork: "libs-sub",
		IpAllocationPolicy: &containerpb.IPAllocationPolicy{UseIpAliases: true, StackType: containerpb.StackType_IPV4,
			ClusterSecondaryRangeName: "pods", ServicesSecondaryRangeName: "services"},
		ReleaseChannel: &containerpb.ReleaseChannel{Channel: containerpb.ReleaseChannel_REGULAR},
		ShieldedNodes:  &containerpb.ShieldedNodes{Enabled: true},
		NodePools:      []*containerpb.NodePool{{Name: "default-pool", InitialNodeCount: 1}},
	}}))
	name := parent + "/clusters/libs"
	c, err := rest.GetCluster(ctx, &containerpb.GetClusterRequest{Name: name})
	must("get cluster", err)
	if c.Status != containerpb.Cluster_RUNNING || c.IpAllocationPolicy.StackType != containerpb.StackType_IPV4 || c.ReleaseChannel.Channel != containerpb.ReleaseChannel_REGULAR ||
		!strings.HasSuffix(c.NetworkConfig.Subnetwork, "/libs-sub") || c.LegacyAbac == nil || c.CurrentNodeCount != 1 {
		t.Errorf("cluster through the REST client: status %v, stack %v, channel %v, subnetwork %s, legacyAbac %v, nodes %d",
			c.Status, c.IpAllocationPolicy.GetStackType(), c.GetReleaseChannel().GetChannel(), c.GetNetworkConfig().GetSubnetwork(), c.LegacyAbac, c.CurrentNodeCount)
	}

	// The same cluster through the discovery client: labels, and a node
	// pool created, resized (its instance group follows) and deleted.
	waitDisc := func(op *gke.Operation, err error) {
		t.Helper()
		must("start operation", err)
		for op.Status != "DONE" {
			time.Sleep(200 * time.Millisecond)
			op, err = disc.Projects.Locations.Operations.Get(parent + "/operations/" + op.Name).Context(ctx).Do()
			must("get operation", err)
		}
		if op.Error != nil {
			t.Fatalf("operation %s: %s", op.Name, op.Error.Message)
		}
	}
	dc, err := disc.Projects.Locations.Clusters.Get(name).Context(ctx).Do()
	must("get cluster (discovery)", err)
	waitDisc(disc.Projects.Locations.Clusters.SetResourceLabels(name, &gke.SetLabelsRequest{ResourceLabels: map[string]string{"team": "libs"}, LabelFingerprint: dc.LabelFingerprint}).Context(ctx).Do())
	waitDisc(disc.Projects.Locations.Clusters.NodePools.Create(name, &gke.CreateNodePoolRequest{NodePool: &gke.NodePool{Name: "extra", InitialNodeCount: 1}}).Context(ctx).Do())
	waitDisc(disc.Projects.Locations.Clusters.NodePools.SetSize(name+"/nodePools/extra", &gke.SetNodePoolSizeRequest{NodeCount: 2}).Context(ctx).Do())
	pool, err := disc.Projects.Locations.Clusters.NodePools.Get(name + "/nodePools/extra").Context(ctx).Do()
	must("get node pool", err)
	igm := pool.InstanceGroupUrls[0][strings.LastIndexByte(pool.InstanceGroupUrls[0], '/')+1:]
	if g, err := cmp.InstanceGroupManagers.Get(p, zone, igm).Context(ctx).Do(); err != nil || g.TargetSize != 2 {
		t.Errorf("instance group manager of extra: %+v %v", g, err)
	}
	if dc, err = disc.Projects.Locations.Clusters.Get(name).Context(ctx).Do(); err != nil || dc.ResourceLabels["team"] != "libs" || len(dc.NodePools) != 2 {
		t.Errorf("cluster after the changes: %v %v", dc.ResourceLabels, err)
	}
	waitREST(rest.DeleteNodePool(ctx, &containerpb.DeleteNodePoolRequest{Name: name + "/nodePools/extra"}))
	waitREST(rest.DeleteCluster(ctx, &containerpb.DeleteClusterRequest{Name: name}))
	if _, err := rest.GetCluster(ctx, &containerpb.GetClusterRequest{Name: name}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a deleted cluster: %v", err)
	}

	_, err = cmp.Firewalls.Delete(p, "libs-fw").Context(ctx).Do()
	must("delete firewall", err)
	_, err = cmp.Subnetworks.Delete(p, region, "libs-sub").Context(ctx).Do()
	must("delete subnetwork", err)
	_, err = cmp.Networks.Delete(p, "libs-vpc").Context(ctx).Do()
	must("delete network", err)
	if _, err := cmp.Networks.Get(p, "libs-vpc").Context(ctx).Do(); err == nil {
		t.Error("the network is still there")
	}
}

// TestTerraformRequests: what Terraform's Google provider (v7) sent for a
// cluster in a custom network, and for a private cluster with its DNS,
// router and updates, is accepted by a real engine, and what the provider
// reads back is there (apitest checks every field its read functions use).
func TestTerraformRequests(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := e.APIClient(e.Token())
	c.TerraformCluster()
	c.TerraformPrivateCluster()
}
