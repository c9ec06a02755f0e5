package cidr

import (
	"strings"
	"testing"

	"github.com/kubeyard/kubeyard/internal/status"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		s        string
		min, max int
		want     string // in the message; "" when accepted
	}{
		{"10.10.0.0/20", 8, 29, ""},
		{"192.168.0.0/29", 8, 29, ""},
		{"0.0.0.0/0", 0, 32, ""},
		{"10.10.0.1/20", 8, 29, "did you mean 10.10.0.0/20"},
		{"10.0.0.0/7", 8, 29, "between /8 and /29"},
		{"10.0.0.0/30", 8, 29, "between /8 and /29"},
		{"172.16.0.0/27", 28, 28, "must be a /28"},
		{"10.0.0.0/33", 0, 32, "CIDR notation"},
		{"fd00::/64", 0, 32, "IPv4"},
		{"ten", 0, 32, "CIDR notation"},
	} {
		p, err := Parse("resource.ipCidrRange", c.s, c.min, c.max)
		if c.want == "" {
			if err != nil || p.String() != c.s {
				t.Errorf("%s: %v %v", c.s, p, err)
			}
			continue
		}
		e, ok := err.(*status.Error)
		if !ok || e.Code != status.InvalidArgument || e.Field != "resource.ipCidrRange" || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT on resource.ipCidrRange with %q", c.s, err, c.want)
		}
	}
}
