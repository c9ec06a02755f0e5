package vpc

import (
	"net/netip"

	"github.com/kubeyard/kubeyard/internal/cidr"
)

// parseRange parses an IPv4 CIDR range that Compute Engine accepts for a
// subnetwork: no host bits set, between /8 and /29.
func parseRange(field, s string) (netip.Prefix, error) { return cidr.Parse(field, s, 8, 29) }

// gateway is the first address of a range, where Compute Engine puts the
// subnetwork's gateway.
func gateway(cidr string) string {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return ""
	}
	return p.Addr().Next().String()
}

// Range is a range in use in a network, and what holds it.
type Range struct {
	Prefix netip.Prefix
	Owner  string // "subnetwork sub1", "secondary range pods of subnetwork sub1"
	Region string
}

// FirstOverlap returns the first range of others that overlaps p.
func FirstOverlap(p netip.Prefix, others []Range) (Range, bool) {
	for _, o := range others {
		if o.Prefix.Overlaps(p) {
			return o, true
		}
	}
	return Range{}, false
}
