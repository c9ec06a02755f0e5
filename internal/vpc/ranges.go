package vpc

import (
	"net/netip"

	"github.com/kubeyard/kubeyard/internal/api/apierror"
)

// parseRange parses an IPv4 CIDR range that Compute Engine accepts for a
// subnetwork: no host bits set, between /8 and /29.
func parseRange(field, cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, apierror.InvalidArgument(field, "Invalid value for field '%s': '%s'. Must be an IPv4 range in CIDR notation, such as 10.10.0.0/20.", field, cidr)
	}
	if p.Masked() != p {
		return netip.Prefix{}, apierror.InvalidArgument(field, "Invalid value for field '%s': '%s'. The range has host bits set; did you mean %s?", field, cidr, p.Masked())
	}
	if p.Bits() < 8 || p.Bits() > 29 {
		return netip.Prefix{}, apierror.InvalidArgument(field, "Invalid value for field '%s': '%s'. The prefix length must be between /8 and /29.", field, cidr)
	}
	return p, nil
}

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
