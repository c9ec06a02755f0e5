package engine

import (
	"maps"
	"strings"
	"testing"
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
