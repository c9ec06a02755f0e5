package controlplane

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestZonalPlanGolden pins every flag of a zonal control plane: a change to
// how components are started shows up as a diff of testdata/zonal.golden.
func TestZonalPlanGolden(t *testing.T) {
	c := Cluster{
		Name: "demo", Dir: "/data/clusters/uid", EndpointIP: net.ParseIP("127.10.0.2"),
		ServiceCIDR: "34.118.224.0/20", PodCIDR: "10.0.0.0/14", NodeMaskSize: 24,
		AuthnWebhookURL: "http://127.0.0.1:8080/internal/authn",
	}
	h := Host{Index: 0, IP: net.ParseIP("127.11.0.2")}
	plan := []Component{
		Etcd(c, h, []string{EtcdMember(c, h)}, "new"),
		APIServer(c, h, []string{"https://127.11.0.2:2379"}),
		ControllerManager(c, h),
		Scheduler(c, h),
	}
	var b strings.Builder
	for _, comp := range plan {
		fmt.Fprintf(&b, "# %s (%s) health %s env %v\n", comp.Name, comp.Program, comp.HealthURL, comp.Env)
		for _, a := range comp.Args {
			fmt.Fprintf(&b, "  %s\n", a)
		}
	}
	got := b.String()
	if *update {
		if err := os.WriteFile("testdata/zonal.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/zonal.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("plan differs from testdata/zonal.golden (run with -update to accept):\n%s", got)
	}
	for _, must := range []string{"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true", "--controllers=*,bootstrapsigner,tokencleaner", "--client-cert-auth=true"} {
		if !strings.Contains(got, must) {
			t.Errorf("plan lacks %s", must)
		}
	}
}
