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

// namedRange is a range in a network, and what it belongs to.
type namedRange struct {
	prefix netip.Prefix
	owner  string // "subnetwork sub1", "secondary range pods of subnetwork sub1"
	region string
}

// firstOverlap returns the first range of others that overlaps p.
func firstOverlap(p netip.Prefix, others []namedRange) (namedRange, bool) {
	for _, o := range others {
		if o.prefix.Overlaps(p) {
			return o, true
		}
	}
	return namedRange{}, false
}
