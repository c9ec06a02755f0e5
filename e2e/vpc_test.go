package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestVPCNetworks follows the network part of seeds/002 with the real
// gcloud: a custom-mode network and a subnetwork with secondary ranges and
// private Google access, flow logs turned on, the route and firewall rules
// for restricted.googleapis.com and its private DNS zone, a peering and a
// Cloud Router with custom advertised ranges; the project's
// default auto-mode network
// with its rules; and bad input (overlaps, host bits, names, unknown
// networks, deleting what is in use, a stale fingerprint) refused with the
// field named and nothing changed.
func TestVPCNetworks(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	region := []string{"--region", "us-central1"}
	e.Gcloud("compute", "networks", "create", "vpc1", "--subnet-mode", "custom")
	e.Gcloud(append([]string{"compute", "networks", "subnets", "create", "sub1", "--network", "vpc1",
		"--range", "10.10.0.0/20", "--secondary-range", "pods=10.20.0.0/16,services=10.30.0.0/20", "--enable-private-ip-google-access"}, region...)...)
	got := e.Gcloud(append([]string{"compute", "networks", "subnets", "describe", "sub1", "--format",
		"value(ipCidrRange,gatewayAddress,privateIpGoogleAccess,secondaryIpRanges[0].rangeName,secondaryIpRanges[1].ipCidrRange,network.basename())"}, region...)...)
	if want := "10.10.0.0/20\t10.10.0.1\tTrue\tpods\t10.30.0.0/20\tvpc1"; strings.TrimSpace(got) != want {
		t.Errorf("describe sub1: %q, want %q", got, want)
	}
	if mode := strings.TrimSpace(e.Gcloud("compute", "networks", "describe", "vpc1", "--format", "value(autoCreateSubnetworks,subnetworks.len())")); mode != "False\t1" {
		t.Errorf("vpc1: %q", mode)
	}
	// The project has a default auto-mode network with a subnetwork per
	// region, at Compute Engine's ranges.
	if def := strings.TrimSpace(e.Gcloud(append([]string{"compute", "networks", "subnets", "describe", "default", "--format", "value(ipCidrRange)"}, region...)...)); def != "10.128.0.0/20" {
		t.Errorf("default subnetwork in us-central1: %q", def)
	}
	if list := e.Gcloud("compute", "networks", "subnets", "list", "--network", "vpc1", "--format", "value(name)"); strings.TrimSpace(list) != "sub1" {
		t.Errorf("subnets of vpc1: %q", list)
	}

	// Flow logs on, as seeds/003 turns them on.
	e.Gcloud(append([]string{"compute", "networks", "subnets", "update", "sub1", "--enable-flow-logs"}, region...)...)
	if fl := strings.TrimSpace(e.Gcloud(append([]string{"compute", "networks", "subnets", "describe", "sub1", "--format", "value(enableFlowLogs,logConfig.aggregationInterval)"}, region...)...)); fl != "True\tINTERVAL_5_SEC" {
		t.Errorf("flow logs: %q", fl)
	}

	// seeds/002's route and egress rule for restricted.googleapis.com; a new
	// network comes with its default route to the internet gateway.
	e.Gcloud("compute", "routes", "create", "restricted-apis", "--network", "vpc1", "--destination-range", "199.36.153.4/30", "--next-hop-gateway", "default-internet-gateway")
	e.Gcloud("compute", "firewall-rules", "create", "allow-restricted", "--network", "vpc1", "--direction", "EGRESS", "--destination-ranges", "199.36.153.4/30", "--allow", "tcp:443")
	e.Gcloud("compute", "firewall-rules", "create", "deny-ssh", "--network", "vpc1", "--action", "deny", "--rules", "tcp:22,udp:1000-2000,icmp", "--source-ranges", "10.0.0.0/8", "--target-tags", "web", "--priority", "0")
	if got := strings.TrimSpace(e.Gcloud("compute", "firewall-rules", "describe", "deny-ssh", "--format", "value(direction,priority,denied[1].ports[0],sourceRanges[0],targetTags[0])")); got != "INGRESS\t0\t1000-2000\t10.0.0.0/8\tweb" {
		t.Errorf("deny-ssh: %q", got)
	}
	if got := strings.TrimSpace(e.Gcloud("compute", "firewall-rules", "describe", "allow-restricted", "--format", "value(direction,priority,allowed[0].ports[0],destinationRanges[0])")); got != "EGRESS\t1000\t443\t199.36.153.4/30" {
		t.Errorf("allow-restricted: %q", got)
	}
	// An update changes what it names and keeps the rest.
	e.Gcloud("compute", "firewall-rules", "update", "deny-ssh", "--priority", "10", "--source-ranges", "10.0.0.0/16")
	if got := strings.TrimSpace(e.Gcloud("compute", "firewall-rules", "describe", "deny-ssh", "--format", "value(priority,sourceRanges.list(),denied[0].ports[0],targetTags[0])")); got != "10\t10.0.0.0/16\t22\tweb" {
		t.Errorf("deny-ssh after the update: %q", got)
	}
	// A subnetwork grows (never shrinks) over free space.
	e.Gcloud(append([]string{"compute", "networks", "subnets", "create", "grow", "--network", "vpc1", "--range", "10.60.0.0/24"}, region...)...)
	e.Gcloud(append([]string{"compute", "networks", "subnets", "expand-ip-range", "grow", "--prefix-length", "20", "--quiet"}, region...)...)
	if got := strings.TrimSpace(e.Gcloud(append([]string{"compute", "networks", "subnets", "describe", "grow", "--format", "value(ipCidrRange)"}, region...)...)); got != "10.60.0.0/20" {
		t.Errorf("grow after expanding: %q", got)
	}
	if out, err := e.Run("gcloud", append([]string{"compute", "networks", "subnets", "expand-ip-range", "grow", "--prefix-length", "8", "--quiet"}, region...)...); err == nil || !strings.Contains(out, "conflicts with") {
		t.Errorf("expanding over sub1: %v\n%s", err, out)
	}
	e.Gcloud(append([]string{"compute", "networks", "subnets", "delete", "grow", "--quiet"}, region...)...)
	routes := e.Gcloud("compute", "routes", "list", "--filter", "network:vpc1", "--format", "value(name,destRange)")
	if lines := strings.Split(strings.TrimSpace(routes), "\n"); len(lines) != 2 || !strings.Contains(routes, "restricted-apis\t199.36.153.4/30") || !strings.Contains(routes, "default-route-") {
		t.Errorf("routes of vpc1:\n%s", routes)
	}
	if fws := e.Gcloud("compute", "firewall-rules", "list", "--filter", "network:default", "--format", "value(name)"); strings.Fields(fws)[0] != "default-allow-icmp" || len(strings.Fields(fws)) != 4 || !strings.Contains(fws, "default-allow-internal") {
		t.Errorf("the default network's rules:\n%s", fws)
	}

	// seeds/002's private zone for googleapis.com, bound to vpc1.
	e.Gcloud("dns", "managed-zones", "create", "googleapis", "--dns-name", "googleapis.com.", "--visibility", "private", "--networks", "vpc1", "--description", "private google access")
	e.Gcloud("dns", "record-sets", "create", "restricted.googleapis.com.", "--zone", "googleapis", "--type", "A", "--ttl", "300", "--rrdatas", "199.36.153.4,199.36.153.5,199.36.153.6,199.36.153.7")
	e.Gcloud("dns", "record-sets", "create", "*.googleapis.com.", "--zone", "googleapis", "--type", "CNAME", "--ttl", "300", "--rrdatas", "restricted.googleapis.com.")
	if z := strings.TrimSpace(e.Gcloud("dns", "managed-zones", "describe", "googleapis", "--format", "value(visibility,dnsName,privateVisibilityConfig.networks[0].networkUrl.basename())")); z != "private\tgoogleapis.com.\tvpc1" {
		t.Errorf("zone googleapis: %q", z)
	}
	if rr := e.Gcloud("dns", "record-sets", "list", "--zone", "googleapis", "--format", "value(name,type)"); !strings.Contains(rr, "restricted.googleapis.com.\tA") || !strings.Contains(rr, "*.googleapis.com.\tCNAME") || !strings.Contains(rr, "googleapis.com.\tSOA") {
		t.Errorf("record sets of googleapis:\n%s", rr)
	}
	// Peering (the shape GKE's private clusters use): INACTIVE until both
	// sides peer, route exchange updated in place.
	e.Gcloud("compute", "networks", "create", "vpc2", "--subnet-mode", "custom")
	e.Gcloud("compute", "networks", "subnets", "create", "sub-peer", "--network", "vpc2", "--range", "10.11.0.0/20", "--region", "us-central1")
	e.Gcloud("compute", "networks", "peerings", "create", "vpc1-vpc2", "--network", "vpc1", "--peer-network", "vpc2")
	peering := func(network string) string {
		return strings.TrimSpace(e.Gcloud("compute", "networks", "peerings", "list", "--network", network, "--flatten", "peerings[]",
			"--format", "value(peerings.name,peerings.state,peerings.exportCustomRoutes,peerings.importCustomRoutes)"))
	}
	if got := peering("vpc1"); got != "vpc1-vpc2\tINACTIVE\tFalse\tFalse" {
		t.Errorf("one side peered: %q", got)
	}
	e.Gcloud("compute", "networks", "peerings", "create", "vpc2-vpc1", "--network", "vpc2", "--peer-network", "vpc1")
	e.Gcloud("compute", "networks", "peerings", "update", "vpc1-vpc2", "--network", "vpc1", "--export-custom-routes")
	if got := peering("vpc1"); got != "vpc1-vpc2\tACTIVE\tTrue\tFalse" {
		t.Errorf("both sides peered, export on: %q", got)
	}
	// A Cloud Router advertising the restricted and private Google ranges.
	e.Gcloud("compute", "routers", "create", "r1", "--network", "vpc1", "--region", "us-central1", "--asn", "65001",
		"--advertisement-mode", "custom", "--set-advertisement-groups", "all_subnets", "--set-advertisement-ranges", "199.36.153.4/30")
	e.Gcloud("compute", "routers", "update", "r1", "--region", "us-central1", "--add-advertisement-ranges", "199.36.153.8/30")
	if got := strings.TrimSpace(e.Gcloud("compute", "routers", "describe", "r1", "--region", "us-central1", "--format", "value(bgp.asn,bgp.advertiseMode,bgp.advertisedIpRanges[].range)")); got != "65001\tCUSTOM\t199.36.153.4/30;199.36.153.8/30" {
		t.Errorf("router r1: %q", got)
	}
	dnsBefore := e.Gcloud("dns", "record-sets", "list", "--zone", "googleapis", "--format", "value(name,type,rrdatas)")

	before := e.Gcloud("compute", "networks", "subnets", "list", "--format", "value(name,ipCidrRange,secondaryIpRanges)")
	rulesBefore := e.Gcloud("compute", "firewall-rules", "list", "--format", "value(name)")
	routesBefore := e.Gcloud("compute", "routes", "list", "--format", "value(name)")
	routerBefore := e.Gcloud("compute", "routers", "describe", "r1", "--region", "us-central1", "--format", "json")
	refused := []struct {
		name string
		args []string
		want string
	}{
		{"overlapping primary", []string{"compute", "networks", "subnets", "create", "sub2", "--network", "vpc1", "--range", "10.10.8.0/24", "--region", "us-east1"}, "conflicts with existing subnetwork sub1"},
		{"primary in a secondary", []string{"compute", "networks", "subnets", "create", "sub2", "--network", "vpc1", "--range", "10.20.128.0/20", "--region", "us-central1"}, "secondary range pods of subnetwork sub1"},
		{"secondary over its primary", []string{"compute", "networks", "subnets", "create", "sub2", "--network", "vpc1", "--range", "10.50.0.0/20", "--secondary-range", "a=10.50.8.0/24", "--region", "us-central1"}, "primary range of subnetwork sub2"},
		{"host bits", []string{"compute", "networks", "subnets", "create", "sub2", "--network", "vpc1", "--range", "10.40.0.1/20", "--region", "us-central1"}, "'resource.ipCidrRange'"},
		{"not a CIDR", []string{"compute", "networks", "subnets", "create", "sub2", "--network", "vpc1", "--range", "10.40.0.0/33", "--region", "us-central1"}, "ipCidrRange"},
		{"bad name", []string{"compute", "networks", "create", "Bad_Name"}, "'resource.name'"},
		{"unknown network", []string{"compute", "networks", "subnets", "create", "sub2", "--network", "nope", "--range", "10.60.0.0/20", "--region", "us-central1"}, "networks/nope' was not found"},
		{"network with a subnetwork", []string{"compute", "networks", "delete", "vpc1", "--quiet"}, "already being used by 'projects/" + e.Project + "/regions/us-central1/subnetworks/sub1'"},
		{"an auto-mode network's own subnetwork", []string{"compute", "networks", "subnets", "delete", "default", "--region", "us-central1", "--quiet"}, "auto-mode network"},
		{"unknown protocol", []string{"compute", "firewall-rules", "create", "fw-bad", "--network", "vpc1", "--allow", "tcpp:80"}, "IPProtocol"},
		{"ports on icmp", []string{"compute", "firewall-rules", "create", "fw-bad", "--network", "vpc1", "--allow", "icmp:80"}, "ports"},
		{"port out of range", []string{"compute", "firewall-rules", "create", "fw-bad", "--network", "vpc1", "--allow", "tcp:70000"}, "ports[0]"},
		{"bad source range", []string{"compute", "firewall-rules", "create", "fw-bad", "--network", "vpc1", "--allow", "tcp:80", "--source-ranges", "10.0.0.0/40"}, "sourceRanges[0]"},
		{"route with host bits", []string{"compute", "routes", "create", "r-bad", "--network", "vpc1", "--destination-range", "199.36.153.5/30", "--next-hop-gateway", "default-internet-gateway"}, "destRange"},
		{"route to an address outside the network", []string{"compute", "routes", "create", "r-bad", "--network", "vpc1", "--destination-range", "10.99.0.0/16", "--next-hop-address", "192.168.1.1"}, "not in a subnetwork"},
		{"network with a firewall rule", []string{"compute", "networks", "delete", "vpc1", "--quiet"}, "already being used by"},
		{"zone on an unknown network", []string{"dns", "managed-zones", "create", "gcr", "--dns-name", "gcr.io.", "--visibility", "private", "--networks", "nope", "--description", "x"}, "networkUrl"},
		{"record outside its zone", []string{"dns", "record-sets", "create", "gcr.io.", "--zone", "googleapis", "--type", "A", "--rrdatas", "199.36.153.4"}, "not in zone googleapis"},
		{"A record with an IPv6 address", []string{"dns", "record-sets", "create", "x.googleapis.com.", "--zone", "googleapis", "--type", "A", "--rrdatas", "fd00::1"}, "rrdatas[0]"},
		{"zone that is not empty", []string{"dns", "managed-zones", "delete", "googleapis", "--quiet"}, "not empty"},
		{"range overlapping a peered network", []string{"compute", "networks", "subnets", "create", "sub2", "--network", "vpc2", "--range", "10.10.4.0/24", "--region", "us-east1"}, "peered network vpc1"},
		{"peering with itself", []string{"compute", "networks", "peerings", "create", "self", "--network", "vpc1", "--peer-network", "vpc1"}, "itself"},
		{"router with a public ASN", []string{"compute", "routers", "create", "r2", "--network", "vpc1", "--region", "us-central1", "--asn", "15169"}, "bgp.asn"},
		{"advertised range with host bits", []string{"compute", "routers", "update", "r1", "--region", "us-central1", "--add-advertisement-ranges", "199.36.153.9/30"}, "advertisedIpRanges"},
		{"legacy network", []string{"compute", "networks", "create", "old", "--subnet-mode", "legacy"}, "Legacy networks are not supported"},
		{"legacy network with a range", []string{"compute", "networks", "create", "old", "--subnet-mode", "legacy", "--range", "10.5.0.0/16"}, "IPv4Range"},
	}
	for _, c := range refused {
		out, err := e.Run("gcloud", c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: %v, want an error with %q\n%s", c.name, err, c.want, out)
		}
	}
	// A patch over a stale fingerprint.
	path := fmt.Sprintf("/compute/v1/projects/%s/regions/us-central1/subnetworks/sub1", e.Project)
	code, body := e.API("PATCH", path, e.Token(), map[string]any{"fingerprint": "0000", "privateIpGoogleAccess": false})
	if status, _, _, _ := errorOf(t, body); code != 400 || status != "FAILED_PRECONDITION" {
		t.Errorf("a stale fingerprint: HTTP %d %v", code, body)
	}
	if after := e.Gcloud("compute", "networks", "subnets", "list", "--format", "value(name,ipCidrRange,secondaryIpRanges)"); after != before {
		t.Errorf("refused changes changed the subnetworks:\n%s\n->\n%s", before, after)
	}
	if after := e.Gcloud("dns", "record-sets", "list", "--zone", "googleapis", "--format", "value(name,type,rrdatas)"); after != dnsBefore {
		t.Errorf("refused changes changed the zone: %q -> %q", dnsBefore, after)
	}
	if zones := strings.TrimSpace(e.Gcloud("dns", "managed-zones", "list", "--format", "value(name)")); zones != "googleapis" {
		t.Errorf("zones after refused changes: %q", zones)
	}
	if after := e.Gcloud("compute", "firewall-rules", "list", "--format", "value(name)"); after != rulesBefore {
		t.Errorf("refused changes changed the firewall rules: %q -> %q", rulesBefore, after)
	}
	if after := e.Gcloud("compute", "routers", "describe", "r1", "--region", "us-central1", "--format", "json"); after != routerBefore {
		t.Errorf("refused changes changed the router:\n%s", after)
	}
	if routers := strings.TrimSpace(e.Gcloud("compute", "routers", "list", "--format", "value(name)")); routers != "r1" {
		t.Errorf("routers after refused changes: %q", routers)
	}
	if after := e.Gcloud("compute", "routes", "list", "--format", "value(name)"); after != routesBefore {
		t.Errorf("refused changes changed the routes: %q -> %q", routesBefore, after)
	}
	if nets := e.Gcloud("compute", "networks", "list", "--format", "value(name)"); strings.Fields(nets)[0] != "default" || len(strings.Fields(nets)) != 3 {
		t.Errorf("networks after refused changes: %q", nets)
	}

	// A cluster in the default network keeps it (and its subnetwork) in use.
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "1")
	for _, args := range [][]string{
		{"compute", "networks", "delete", "default", "--quiet"},
		{"compute", "networks", "subnets", "delete", "default", "--region", "us-central1", "--quiet"},
	} {
		if out, err := e.Run("gcloud", args...); err == nil || !strings.Contains(out, "clusters/demo") {
			t.Errorf("%v with a cluster in it: %v\n%s", args, err, out)
		}
	}

	e.Gcloud("compute", "routers", "delete", "r1", "--region", "us-central1", "--quiet")
	e.Gcloud("compute", "networks", "subnets", "delete", "sub-peer", "--region", "us-central1", "--quiet")
	if out, err := e.Run("gcloud", "compute", "networks", "delete", "vpc2", "--quiet"); err == nil || !strings.Contains(out, "peering vpc2-vpc1") {
		t.Errorf("deleting a peered network: %v\n%s", err, out)
	}
	e.Gcloud("compute", "networks", "peerings", "delete", "vpc1-vpc2", "--network", "vpc1")
	if got := peering("vpc2"); got != "vpc2-vpc1\tINACTIVE\tFalse\tFalse" {
		t.Errorf("after the other side left: %q", got)
	}
	e.Gcloud("compute", "networks", "peerings", "delete", "vpc2-vpc1", "--network", "vpc2")
	e.Gcloud("compute", "networks", "delete", "vpc2", "--quiet")
	e.Gcloud("dns", "record-sets", "delete", "restricted.googleapis.com.", "--zone", "googleapis", "--type", "A")
	e.Gcloud("dns", "record-sets", "delete", "*.googleapis.com.", "--zone", "googleapis", "--type", "CNAME")
	e.Gcloud("dns", "managed-zones", "delete", "googleapis", "--quiet")
	e.Gcloud(append([]string{"compute", "networks", "subnets", "delete", "sub1", "--quiet"}, region...)...)
	// Several resources in one command go through the batch endpoint.
	e.Gcloud("compute", "firewall-rules", "delete", "allow-restricted", "deny-ssh", "--quiet")
	e.Gcloud("compute", "routes", "delete", "restricted-apis", "--quiet")
	e.Gcloud("compute", "networks", "delete", "vpc1", "--quiet")
	if routes := e.Gcloud("compute", "routes", "list", "--filter", "network:vpc1", "--format", "value(name)"); strings.TrimSpace(routes) != "" {
		t.Errorf("vpc1's default route outlived it: %q", routes)
	}
	if nets := strings.TrimSpace(e.Gcloud("compute", "networks", "list", "--format", "value(name)")); nets != "default" {
		t.Errorf("networks after deleting vpc1: %q", nets)
	}
}

// TestPeeredNetworks: pods of clusters in two networks reach each other
// only through a peering, and as the receiving network's firewall allows;
// the peering removed, they do not. Pods of two clusters in one network
// reach each other as its rules allow.
func TestPeeredNetworks(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("compute", "networks", "create", "vpc2", "--subnet-mode", "custom")
	e.Gcloud("compute", "networks", "subnets", "create", "sub2", "--network", "vpc2", "--region", "us-central1", "--range", "172.20.0.0/20")
	e.Gcloud("container", "clusters", "create", "two", "--zone", zone, "--num-nodes", "1", "--network", "vpc2", "--subnetwork", "sub2",
		"--enable-ip-alias", "--cluster-ipv4-cidr", "10.60.0.0/14", "--services-ipv4-cidr", "10.64.0.0/20")
	e.Gcloud("container", "clusters", "get-credentials", "two", "--zone", zone)
	e.Kubectl("run", "server", "--image=us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0")
	e.Kubectl("wait", "--for=condition=Ready", "pod/server", "--timeout=60s")
	server := getPod(t, e, "server")
	e.Gcloud("container", "clusters", "create", "one", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "one", "--zone", zone)
	e.Kubectl("run", "client", "--image=us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0")
	e.Kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
	reach := func() error {
		out, err := e.Run("kubectl", "exec", "client", "--", "timeout", "3", "wget", "-qO-", server.Status.PodIP+":8080")
		if err != nil || !strings.Contains(out, "Hostname: server") {
			return fmt.Errorf("the client does not reach the server in vpc2: %v %s", err, out)
		}
		return nil
	}
	unreachable := func(why string) func() error {
		return func() error {
			if reach() == nil {
				return fmt.Errorf("%s, and the client reaches the server", why)
			}
			return nil
		}
	}
	e.Gcloud("compute", "firewall-rules", "create", "vpc2-from-default", "--network", "vpc2", "--allow", "tcp:8080", "--source-ranges", "10.0.0.0/8")
	if err := unreachable("the networks are not peered")(); err != nil {
		t.Fatal(err)
	}
	e.Gcloud("compute", "networks", "peerings", "create", "default-vpc2", "--network", "default", "--peer-network", "vpc2")
	e.Gcloud("compute", "networks", "peerings", "create", "vpc2-default", "--network", "vpc2", "--peer-network", "default")
	e.Eventually(10*time.Second, reach)
	// The receiving network's firewall decides: without the rule, its
	// implied deny.
	e.Gcloud("compute", "firewall-rules", "delete", "vpc2-from-default", "--quiet")
	e.Eventually(10*time.Second, unreachable("vpc2 has no rule for the client"))
	e.Gcloud("compute", "firewall-rules", "create", "vpc2-from-default", "--network", "vpc2", "--allow", "tcp:8080", "--source-ranges", "10.0.0.0/8")
	e.Eventually(10*time.Second, reach)
	e.Gcloud("compute", "networks", "peerings", "delete", "default-vpc2", "--network", "default", "--quiet")
	e.Eventually(10*time.Second, unreachable("the peering is deleted"))
	e.Gcloud("compute", "networks", "peerings", "delete", "vpc2-default", "--network", "vpc2", "--quiet")

	// Two clusters in one network reach each other as its rules allow:
	// a pod of a third cluster, in vpc2, reaches the server while the rule
	// lets 10.0.0.0/8 in, and not without it (GKE's rules for cluster two
	// admit its own ranges only).
	e.Gcloud("container", "clusters", "create", "three", "--zone", zone, "--num-nodes", "1", "--network", "vpc2", "--subnetwork", "sub2", "--enable-ip-alias")
	e.Gcloud("container", "clusters", "get-credentials", "three", "--zone", zone)
	e.Kubectl("run", "client", "--image=us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0")
	e.Kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
	e.Eventually(10*time.Second, reach)
	e.Gcloud("compute", "firewall-rules", "delete", "vpc2-from-default", "--quiet")
	e.Eventually(10*time.Second, unreachable("vpc2 has no rule for cluster three's pods"))

	for _, c := range []string{"one", "two", "three"} {
		e.Gcloud("container", "clusters", "delete", c, "--zone", zone, "--quiet")
	}
	if left := e.Leftovers(); len(left) > 0 {
		t.Errorf("after the clusters' deletion: %s", strings.Join(left, ", "))
	}
}

// TestZonesAndRegions: gcloud lists the locations the engine accepts, as
// the console's create form offers them.
func TestZonesAndRegions(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	zones := e.Gcloud("compute", "zones", "list", "--filter", "region:us-central1", "--format", "value(name,status)")
	if got := strings.Fields(zones); len(got) != 8 || got[0] != "us-central1-a" || got[1] != "UP" {
		t.Errorf("zones in us-central1:\n%s", zones)
	}
	regions := e.Gcloud("compute", "regions", "list", "--format", "value(name)")
	if !strings.Contains(regions, "us-central1\n") || !strings.Contains(regions, "europe-west1\n") {
		t.Errorf("regions:\n%s", regions)
	}
}
