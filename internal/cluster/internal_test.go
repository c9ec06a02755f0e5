package cluster

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/kubeyard/kubeyard/internal/controlplane"
)

// The internal endpoint admits everyone without authorized networks; with
// them, those networks, the cluster's machines, and always its nodes' and
// pods' ranges.
func TestInternalAllow(t *testing.T) {
	s := Spec{Cluster: controlplane.Cluster{PodCIDR: "10.4.0.0/14"}, NodeRange: netip.MustParsePrefix("10.128.0.0/20"),
		Hosts: []controlplane.Host{{IP: net.ParseIP("127.11.0.2")}}}
	if got := s.internalAllow(); got != nil {
		t.Errorf("without authorized networks: %v, want everyone (nil)", got)
	}
	s.AuthorizedNetworks = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	got := s.internalAllow()
	for _, want := range []string{"192.0.2.0/24", "127.11.0.2/32", "10.128.0.0/20", "10.4.0.0/14"} {
		if !slices.Contains(got, want) {
			t.Errorf("with authorized networks: %v lacks %s", got, want)
		}
	}
}
