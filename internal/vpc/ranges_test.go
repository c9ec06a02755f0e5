package vpc

import (
	"net/netip"
	"testing"

	"github.com/kubeyard/kubeyard/internal/status"
)

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		cidr string
		ok   bool
	}{
		{"10.10.0.0/20", true},
		{"192.168.0.0/29", true},
		{"10.10.0.1/20", false}, // host bits
		{"10.0.0.0/7", false},
		{"10.0.0.0/30", false},
		{"10.0.0.0/33", false},
		{"fd00::/64", false},
		{"ten", false},
	} {
		_, err := parseRange("resource.ipCidrRange", c.cidr)
		if c.ok != (err == nil) {
			t.Errorf("%s: %v", c.cidr, err)
		}
		if err != nil {
			if e, ok := err.(*status.Error); !ok || e.Code != status.InvalidArgument {
				t.Errorf("%s: not INVALID_ARGUMENT: %v", c.cidr, err)
			}
		}
	}
}

func TestFirstOverlap(t *testing.T) {
	others := []Range{
		{Prefix: netip.MustParsePrefix("10.10.0.0/20"), Owner: "subnetwork a"},
		{Prefix: netip.MustParsePrefix("10.20.0.0/16"), Owner: "secondary range pods of subnetwork a"},
	}
	for cidr, want := range map[string]string{
		"10.10.8.0/24":   "subnetwork a",
		"10.0.0.0/8":     "subnetwork a",
		"10.20.128.0/20": "secondary range pods of subnetwork a",
		"10.10.16.0/20":  "",
	} {
		o, ok := FirstOverlap(netip.MustParsePrefix(cidr), others)
		if (want != "") != ok || o.Owner != want {
			t.Errorf("%s: overlaps %q, want %q", cidr, o.Owner, want)
		}
	}
	if gateway("10.10.0.0/20") != "10.10.0.1" {
		t.Error("gateway")
	}
}
