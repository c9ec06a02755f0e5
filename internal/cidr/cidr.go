// Package cidr parses the IPv4 ranges that requests carry (subnetworks,
// routes, advertised ranges, cluster ranges, control-plane ranges,
// authorized networks) with one set of checks and messages: a range that
// is not IPv4 CIDR notation, has host bits set, or has a prefix length
// outside what the field allows is INVALID_ARGUMENT naming the field.
package cidr

import (
	"net/netip"

	"github.com/kubeyard/kubeyard/internal/status"
)

// Parse parses s, the value of field, as an IPv4 range whose prefix length
// is from minBits to maxBits.
func Parse(field, s string, minBits, maxBits int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is4():
		return netip.Prefix{}, status.Invalid(field, "Invalid value for field '%s': '%s'. Must be an IPv4 range in CIDR notation, such as 10.10.0.0/20.", field, s)
	case p.Masked() != p:
		return netip.Prefix{}, status.Invalid(field, "Invalid value for field '%s': '%s'. The range has host bits set; did you mean %s?", field, s, p.Masked())
	case p.Bits() < minBits || p.Bits() > maxBits:
		if minBits == maxBits {
			return netip.Prefix{}, status.Invalid(field, "Invalid value for field '%s': '%s'. The range must be a /%d.", field, s, minBits)
		}
		return netip.Prefix{}, status.Invalid(field, "Invalid value for field '%s': '%s'. The prefix length must be between /%d and /%d.", field, s, minBits, maxBits)
	}
	return p, nil
}

// Any is Parse with every prefix length allowed.
func Any(field, s string) (netip.Prefix, error) { return Parse(field, s, 0, 32) }
