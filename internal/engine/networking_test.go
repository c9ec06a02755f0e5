package engine

import (
	"errors"
	"fmt"
	"testing"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
)

func blocks(cidrs ...string) *container.MasterAuthorizedNetworksConfig {
	cfg := &container.MasterAuthorizedNetworksConfig{Enabled: true}
	for _, c := range cidrs {
		cfg.CidrBlocks = append(cfg.CidrBlocks, &container.CidrBlock{CidrBlock: c})
	}
	return cfg
}

func TestAuthorizedNetworksChecks(t *testing.T) {
	many := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("10.%d.0.0/16", i))
		}
		return out
	}
	cases := []struct {
		name        string
		cfg         *container.MasterAuthorizedNetworksConfig
		privateOnly bool
		field       string // "" when accepted
	}{
		{"none", nil, false, ""},
		{"ranges", blocks("127.77.0.0/16", "203.0.113.7/32"), false, ""},
		{"everyone on a public endpoint", blocks("0.0.0.0/0"), false, ""},
		{"everyone on a private endpoint only", blocks("0.0.0.0/0"), true, "f.cidrBlocks[0].cidrBlock"},
		{"not a range", blocks("127.77.0.0/16", "nope"), false, "f.cidrBlocks[1].cidrBlock"},
		{"host bits", blocks("127.77.0.1/16"), false, "f.cidrBlocks[0].cidrBlock"},
		{"IPv6", blocks("2001:db8::/32"), false, "f.cidrBlocks[0].cidrBlock"},
		{"50 on a public endpoint", blocks(many(50)...), false, ""},
		{"51 on a public endpoint", blocks(many(51)...), false, "f.cidrBlocks"},
		{"100 on a private endpoint only", blocks(many(100)...), true, ""},
		{"given but not enabled", &container.MasterAuthorizedNetworksConfig{CidrBlocks: blocks("10.0.0.0/8").CidrBlocks}, false, "f.enabled"},
	}
	for _, tc := range cases {
		err := authorizedNetworks("f", tc.cfg, tc.privateOnly)
		var apiErr *status.Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &apiErr) || apiErr.Code != status.InvalidArgument || apiErr.Field != tc.field):
			t.Errorf("%s: got %v, want INVALID_ARGUMENT on %s", tc.name, err, tc.field)
		}
	}
}
