package engine

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	container "google.golang.org/api/container/v1"
)

func TestEtcdTopologyLabel(t *testing.T) {
	// At create: defaulted, validated.
	if got, err := etcdTopology(nil, false); err != nil || got[EtcdTopologyLabel] != topologyStacked {
		t.Fatalf("default: %v %v", got, err)
	}
	if _, err := etcdTopology(map[string]string{EtcdTopologyLabel: "sideways"}, false); err == nil {
		t.Fatal("an unknown topology was accepted")
	}
	// The shared etcd is for zonal clusters: a regional one keeps members
	// of its own, one per replica or external.
	if _, err := etcdTopology(map[string]string{EtcdTopologyLabel: topologyShared}, false); err != nil {
		t.Fatalf("shared, zonal: %v", err)
	}
	_, err := etcdTopology(map[string]string{EtcdTopologyLabel: topologyShared}, true)
	if err == nil || !strings.Contains(err.Error(), "zonal clusters only") {
		t.Fatalf("shared, regional: %v", err)
	}
	// On a label update: kept when left out, refused when changed.
	old := map[string]string{EtcdTopologyLabel: topologyExternal, "team": "a"}
	tests := []struct {
		name   string
		labels map[string]string
		want   map[string]string
		ok     bool
	}{
		{"left out", map[string]string{"team": "b"}, map[string]string{"team": "b", EtcdTopologyLabel: topologyExternal}, true},
		{"all cleared", nil, map[string]string{EtcdTopologyLabel: topologyExternal}, true},
		{"repeated", map[string]string{EtcdTopologyLabel: topologyExternal}, map[string]string{EtcdTopologyLabel: topologyExternal}, true},
		{"changed", map[string]string{EtcdTopologyLabel: topologyStacked}, nil, false},
	}
	for _, tt := range tests {
		got, err := keepTopology(old, tt.labels)
		if (err == nil) != tt.ok || (tt.ok && !maps.Equal(got, tt.want)) {
			t.Errorf("%s: got %v, %v; want %v (ok %v)", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

// TestSharedEtcdAddressIsTheEngines: the shared etcd's address is taken
// once, by the first shared cluster, and is the engine's: every shared
// cluster gets the same, and it stays taken when they are all gone, so no
// other cluster's machine gets it.
func TestSharedEtcdAddressIsTheEngines(t *testing.T) {
	g := newRig(t)
	shared := func(c *container.Cluster) { c.ResourceLabels = map[string]string{EtcdTopologyLabel: topologyShared} }
	g.createCluster("a", 1, shared)
	g.createCluster("b", 1, shared)
	ip := g.cluster("a").SharedEtcdIP
	if ip == "" || g.cluster("b").SharedEtcdIP != ip {
		t.Fatalf("shared etcd addresses: a %q, b %q", ip, g.cluster("b").SharedEtcdIP)
	}
	g.checkConsistent()
	for _, name := range []string{"a", "b"} {
		g.wait(g.e.DeleteCluster(context.Background(), project, zone, name))
	}
	g.createCluster("c", 1)
	if hosts := g.cluster("c").HostIPs; slices.Contains(hosts, ip) {
		t.Fatalf("the shared etcd's address %s went to cluster c's machines %v", ip, hosts)
	}
	g.createCluster("d", 1, shared)
	if got := g.cluster("d").SharedEtcdIP; got != ip {
		t.Fatalf("a later shared cluster got %q, want the shared etcd's %s", got, ip)
	}
	g.checkConsistent()
}
