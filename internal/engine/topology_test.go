package engine

import (
	"maps"
	"testing"
)

func TestEtcdTopologyLabel(t *testing.T) {
	// At create: defaulted, validated.
	if got, err := etcdTopology(nil); err != nil || got[EtcdTopologyLabel] != topologyStacked {
		t.Fatalf("default: %v %v", got, err)
	}
	if _, err := etcdTopology(map[string]string{EtcdTopologyLabel: "sideways"}); err == nil {
		t.Fatal("an unknown topology was accepted")
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
