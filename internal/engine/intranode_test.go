package engine

import (
	"context"
	"errors"
	"testing"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
)

func visibility(on bool) func(*container.Cluster) {
	return func(c *container.Cluster) {
		c.NetworkConfig = &container.NetworkConfig{EnableIntraNodeVisibility: on}
	}
}

// refusedOn says whether err is INVALID_ARGUMENT naming field.
func refusedOn(err error, field string) bool {
	var apiErr *status.Error
	return errors.As(err, &apiErr) && apiErr.Code == status.InvalidArgument && apiErr.Field == field
}

// On at create, netd runs on the nodes before the cluster is RUNNING;
// below 1.15 and with Windows pools it is refused by name and nothing is
// created; an update turns it off by restarting the control plane and
// stopping netd, and one that changes nothing is refused.
func TestIntraNodeVisibility(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("seen", 1, visibility(true))
	if !g.rt.Cluster("seen").IntraNodeVisibility || !g.cluster("seen").Cluster.NetworkConfig.EnableIntraNodeVisibility {
		t.Fatal("created with intra-node visibility, netd does not run or the cluster does not say so")
	}
	g.createCluster("unseen", 1)
	if g.rt.Cluster("unseen").IntraNodeVisibility || g.cluster("unseen").Cluster.NetworkConfig.EnableIntraNodeVisibility {
		t.Error("intra-node visibility is on without being asked for")
	}

	windows := func(c *container.Cluster) {
		c.NodePools[0].Config = &container.NodeConfig{ImageType: "WINDOWS_LTSC_CONTAINERD"}
	}
	for _, tc := range []struct {
		name   string
		change []func(*container.Cluster)
		field  string
	}{
		{"version 1.14", []func(*container.Cluster){visibility(true), func(c *container.Cluster) { c.InitialClusterVersion = "1.14.10-gke.27" }}, intraNodeField},
		{"a Windows node pool", []func(*container.Cluster){visibility(true), windows}, intraNodeField},
		{"a Windows node pool, visibility off", []func(*container.Cluster){windows}, "cluster.nodePools[0].config.imageType"},
	} {
		c := &container.Cluster{Name: "refused", NodePools: []*container.NodePool{{Name: "default-pool", InitialNodeCount: 1}}}
		for _, f := range tc.change {
			f(c)
		}
		if _, err := g.e.CreateCluster(ctx, project, zone, c); !refusedOn(err, tc.field) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT on %s", tc.name, err, tc.field)
		}
		if _, _, err := g.e.getCluster(ctx, project, zone, "refused"); err == nil {
			t.Fatalf("%s: the refused cluster exists", tc.name)
		}
	}

	off := &container.ClusterUpdate{DesiredIntraNodeVisibilityConfig: &container.IntraNodeVisibilityConfig{Enabled: false}}
	if _, err := g.e.UpdateCluster(ctx, project, zone, "unseen", off); !refusedOn(err, "update.desiredIntraNodeVisibilityConfig.enabled") {
		t.Errorf("turning off what is off: %v", err)
	}
	both := &container.ClusterUpdate{DesiredIntraNodeVisibilityConfig: off.DesiredIntraNodeVisibilityConfig, DesiredMasterVersion: Version}
	if _, err := g.e.UpdateCluster(ctx, project, zone, "seen", both); !refusedOn(err, "update.desiredIntraNodeVisibilityConfig") {
		t.Errorf("with a version in the same update: %v", err)
	}
	op := g.wait(g.e.UpdateCluster(ctx, project, zone, "seen", off))
	if op.OperationType != OpUpdateCluster {
		t.Errorf("operation %s, want %s", op.OperationType, OpUpdateCluster)
	}
	c := g.rt.Cluster("seen")
	if c.IntraNodeVisibility || c.Replaced[0] != 1 {
		t.Errorf("after turning it off: netd runs %v, the control plane restarted %d times", c.IntraNodeVisibility, c.Replaced[0])
	}
	if r := g.cluster("seen"); r.Cluster.NetworkConfig.EnableIntraNodeVisibility || r.Cluster.Status != "RUNNING" {
		t.Errorf("the cluster says %v, %s", r.Cluster.NetworkConfig.EnableIntraNodeVisibility, r.Cluster.Status)
	}
	g.checkConsistent()
}
