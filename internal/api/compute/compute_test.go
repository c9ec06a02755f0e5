package compute

import (
	"strings"
	"testing"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// Every honoured field is a real field of the resource.
func TestHonouredFieldsAreRealFields(t *testing.T) {
	for _, l := range []struct {
		fields []string
		msg    any
	}{
		{networkFields, compute.Network{}},
		{subnetFields, compute.Subnetwork{}},
		{patchFields, compute.Subnetwork{}},
		{firewallFields, compute.Firewall{}},
		{firewallFields, vpc.FirewallPatch{}},
		{routeFields, compute.Route{}},
		{routerFields, compute.Router{}},
		{addPeeringFields, compute.NetworksAddPeeringRequest{}},
		{updatePeeringFields, compute.NetworksUpdatePeeringRequest{}},
	} {
		for _, f := range codec.Fields(l.fields).Missing(l.msg) {
			t.Errorf("%T has no field %q", l.msg, f)
		}
	}
}

func TestListFilter(t *testing.T) {
	vpc1 := &compute.Route{Name: "a", Network: "http://x/compute/v1/projects/p/global/networks/vpc1", Priority: 1000}
	def := &compute.Route{Name: "b", Network: "http://x/compute/v1/projects/p/global/networks/default", Priority: 900}
	for expr, want := range map[string][]string{
		``:                                  {"a", "b"},
		`network eq ".*\bvpc1\b.*"`:         {"a"},
		`network ne ".*\bvpc1\b.*"`:         {"b"},
		`(name eq "b") (priority eq "900")`: {"b"},
		`(name eq "a") AND (network eq ".*\bdefault\b.*")`: nil,
	} {
		f, err := parseFilter(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		var got []string
		for _, r := range keep(f, []*compute.Route{vpc1, def}) {
			got = append(got, r.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %v, want %v", expr, got, want)
		}
	}
	if _, err := parseFilter(`name = foo OR bar`); err == nil {
		t.Error("an expression kubeyard cannot apply was accepted")
	}
}
