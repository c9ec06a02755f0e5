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
		Name: "demo", Dir: "/data/clusters/uid", EndpointIP: net.ParseIP("127.10.0.2"), InternalEndpointIP: net.ParseIP("10.128.0.3"),
		ServiceCIDR: "34.118.224.0/20", PodCIDR: "10.0.0.0/14", NodeMaskSize: 24,
		AuthnWebhookURL: "http://127.0.0.1:8080/internal/authn", LoneEtcd: true,
	}
	h := Host{Index: 0, IP: net.ParseIP("127.11.0.2")}
	plan := []Component{
		Etcd(c, h, []string{EtcdMember(c, h)}, "new"),
		APIServer(c, h, []string{"https://127.11.0.2:2379"}),
		ControllerManager(c, h),
		Scheduler(c, h),
	}
	got := golden(t, "testdata/zonal.golden", plan)
	for _, must := range []string{"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true", "--controllers=*,bootstrapsigner,tokencleaner", "--client-cert-auth=true",
		"--advertise-address=10.128.0.3", "--endpoint-reconciler-type=lease", "--heartbeat-interval=200"} {
		if !strings.Contains(got, must) {
			t.Errorf("plan lacks %s", must)
		}
	}
}

// TestExternalEtcdPlanGolden pins the external etcd topology: three members
// on machines of their own, started together as a new cluster, and a
// kube-apiserver that lists every member.
func TestExternalEtcdPlanGolden(t *testing.T) {
	c := Cluster{
		Name: "ha", Dir: "/data/clusters/uid", EndpointIP: net.ParseIP("127.10.0.3"),
		ServiceCIDR: "34.118.224.0/20", PodCIDR: "10.4.0.0/14", NodeMaskSize: 24,
		AuthnWebhookURL: "http://127.0.0.1:8080/internal/authn",
	}
	var etcdHosts []Host
	var members, servers []string
	for i := range 3 {
		h := Host{Index: i, IP: net.ParseIP(fmt.Sprintf("127.11.0.%d", 10+i)), EtcdOnly: true}
		etcdHosts = append(etcdHosts, h)
		members = append(members, EtcdMember(c, h))
		servers = append(servers, EtcdClientURL(h))
	}
	var plan []Component
	for _, h := range etcdHosts {
		plan = append(plan, Etcd(c, h, members, "new"))
	}
	plan = append(plan, APIServer(c, Host{Index: 0, IP: net.ParseIP("127.11.0.2")}, servers))
	got := golden(t, "testdata/external-etcd.golden", plan)
	if strings.Contains(got, "--heartbeat-interval") {
		t.Error("a three-member etcd beats slower than etcd's default")
	}
	for _, must := range []string{"--name=ha-etcd-1", "--data-dir=/data/clusters/uid/etcd-2/etcd", "--etcd-servers=" + strings.Join(servers, ",")} {
		if !strings.Contains(got, must) {
			t.Errorf("plan lacks %s", must)
		}
	}
}

// TestSharedEtcdPlanGolden pins the shared topology: one etcd for many
// clusters, which compacts itself, and a kube-apiserver that keeps its
// objects under its cluster's prefix and does not compact (only etcd's
// root user may).
func TestSharedEtcdPlanGolden(t *testing.T) {
	c := Cluster{
		Name: "tenant", Dir: "/data/clusters/uid", EndpointIP: net.ParseIP("127.10.0.4"),
		ServiceCIDR: "34.118.224.0/20", PodCIDR: "10.8.0.0/14", NodeMaskSize: 24,
		AuthnWebhookURL: "http://127.0.0.1:8080/internal/authn", EtcdPrefix: "/clusters/uid/registry",
	}
	plan := []Component{
		SharedEtcd("/data/shared-etcd", net.ParseIP("127.11.0.1")),
		APIServer(c, Host{Index: 0, IP: net.ParseIP("127.11.0.2")}, []string{"https://127.11.0.1:2379"}),
	}
	got := golden(t, "testdata/shared-etcd.golden", plan)
	for _, must := range []string{"--etcd-prefix=/clusters/uid/registry", "--etcd-compaction-interval=0", "--auto-compaction-retention=5m", "--client-cert-auth=true"} {
		if !strings.Contains(got, must) {
			t.Errorf("plan lacks %s", must)
		}
	}
}

// golden renders plan and compares it with the golden file (rewritten with
// -update).
func golden(t *testing.T, file string, plan []Component) string {
	t.Helper()
	var b strings.Builder
	for _, comp := range plan {
		fmt.Fprintf(&b, "# %s (%s) health %s env %v\n", comp.Name, comp.Program, comp.HealthURL, comp.Env)
		for _, a := range comp.Args {
			fmt.Fprintf(&b, "  %s\n", a)
		}
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("plan differs from %s (run with -update to accept):\n%s", file, got)
	}
	return got
}
