package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// checkReach checks that each source reaches (or not) each endpoint.
func checkReach(t *testing.T, endpoints []string, allowed, refused []string) {
	t.Helper()
	for _, ep := range endpoints {
		for _, src := range allowed {
			if err := harness.Reach(src, ep); err != nil {
				t.Errorf("%s from authorized %s: %v", ep, src, err)
			}
		}
		for _, src := range refused {
			if err := harness.Reach(src, ep); err == nil {
				t.Errorf("%s from unauthorized %s: answered", ep, src)
			}
		}
	}
}

// completeIPRotation completes the cluster's IP rotation once its nodes
// are recreated (GKE recreates them after the start).
func completeIPRotation(t *testing.T, e *harness.Engine, name string) {
	t.Helper()
	e.Eventually(2*time.Minute, func() error {
		out, err := e.Run("gcloud", "container", "clusters", "update", name, "--zone", zone, "--complete-ip-rotation", "--quiet")
		if err != nil && !strings.Contains(out, "requires recreation") && !strings.Contains(out, "incompatible operation") {
			t.Fatalf("completing the IP rotation of %s: %v\n%s", name, err, out)
		}
		return err
	})
}

// describeCluster returns the cluster as gcloud describes it.
func describeCluster(t *testing.T, e *harness.Engine, name string) map[string]any {
	t.Helper()
	var c map[string]any
	gcloudJSON(t, e, &c, "container", "clusters", "describe", name, "--zone", zone)
	return c
}

// field reads a dotted path of a decoded JSON object ("" when absent).
func field(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// TestPrivateCluster follows seeds/002 with the real gcloud and kubectl: a
// VPC-native private cluster in a custom network, with its pod and Service
// ranges from named secondary ranges, a private endpoint only, and master
// authorized networks enforced on real connections from authorized and
// unauthorized loopback sources, also on the old and new endpoints of an
// IP rotation; the peering and firewall rules GKE makes; ranges given by
// size or range; and bad input refused with the field named.
func TestPrivateCluster(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	region := []string{"--region", "us-central1"}
	e.Gcloud("compute", "networks", "create", "vpc1", "--subnet-mode", "custom")
	e.Gcloud(append([]string{"compute", "networks", "subnets", "create", "sub1", "--network", "vpc1",
		"--range", "10.10.0.0/20", "--secondary-range", "pods=10.20.0.0/16,services=10.30.0.0/20", "--enable-private-ip-google-access"}, region...)...)
	e.Gcloud("compute", "routes", "create", "restricted-apis", "--network", "vpc1", "--destination-range", "199.36.153.4/30", "--next-hop-gateway", "default-internet-gateway")
	e.Gcloud("compute", "firewall-rules", "create", "allow-restricted", "--network", "vpc1", "--direction", "EGRESS", "--destination-ranges", "199.36.153.4/30", "--allow", "tcp:443")
	e.Gcloud("dns", "managed-zones", "create", "googleapis", "--dns-name", "googleapis.com.", "--visibility", "private", "--networks", "vpc1", "--description", "private google access")
	// *.googleapis.com and gcr.io go to restricted.googleapis.com's range.
	e.Gcloud("dns", "record-sets", "create", "restricted.googleapis.com.", "--zone", "googleapis", "--type", "A", "--ttl", "300", "--rrdatas", "199.36.153.4,199.36.153.5,199.36.153.6,199.36.153.7")
	e.Gcloud("dns", "record-sets", "create", "private.googleapis.com.", "--zone", "googleapis", "--type", "A", "--ttl", "300", "--rrdatas", "199.36.153.8,199.36.153.9,199.36.153.10,199.36.153.11")
	e.Gcloud("dns", "record-sets", "create", "*.googleapis.com.", "--zone", "googleapis", "--type", "CNAME", "--ttl", "300", "--rrdatas", "restricted.googleapis.com.")
	e.Gcloud("dns", "managed-zones", "create", "gcr", "--dns-name", "gcr.io.", "--visibility", "private", "--networks", "vpc1", "--description", "gcr.io to restricted")
	e.Gcloud("dns", "record-sets", "create", "gcr.io.", "--zone", "gcr", "--type", "A", "--ttl", "300", "--rrdatas", "199.36.153.4,199.36.153.5,199.36.153.6,199.36.153.7")
	e.Gcloud("dns", "record-sets", "create", "*.gcr.io.", "--zone", "gcr", "--type", "CNAME", "--ttl", "300", "--rrdatas", "gcr.io.")

	refusalsChangeNothing(t, e)

	// The document's private cluster, as written, but for the source range.
	e.Gcloud("container", "clusters", "create", "priv", "--zone", zone, "--num-nodes", "2",
		"--network", "vpc1", "--subnetwork", "sub1", "--enable-ip-alias",
		"--cluster-secondary-range-name", "pods", "--services-secondary-range-name", "services",
		"--enable-private-nodes", "--enable-private-endpoint", "--master-ipv4-cidr", "172.16.0.32/28",
		"--enable-master-authorized-networks", "--master-authorized-networks", "127.77.0.0/16")
	c := describeCluster(t, e, "priv")
	private := field(c, "privateClusterConfig.privateEndpoint")
	for path, want := range map[string]string{
		"endpoint": private, "privateClusterConfig.publicEndpoint": "", "privateClusterConfig.enablePrivateEndpoint": "true",
		"privateClusterConfig.masterIpv4CidrBlock": "172.16.0.32/28", "networkConfig.defaultEnablePrivateNodes": "true",
		"network": "vpc1", "subnetwork": "sub1", "clusterIpv4Cidr": "10.20.0.0/16", "servicesIpv4Cidr": "10.30.0.0/20",
		"ipAllocationPolicy.clusterSecondaryRangeName": "pods", "ipAllocationPolicy.servicesSecondaryRangeName": "services",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.publicEndpoint": "",
	} {
		if got := field(c, path); got != want {
			t.Errorf("priv %s = %q, want %q", path, got, want)
		}
	}
	if private == "" {
		t.Fatal("priv has no private endpoint")
	}
	if _, err := netip.ParseAddr(private); err != nil {
		t.Fatalf("private endpoint %q", private)
	}

	// A secondary range is one cluster's.
	code, body := e.API("POST", clustersPath(e, zone), e.Token(), map[string]any{"cluster": map[string]any{
		"name": "second", "network": "vpc1", "subnetwork": "sub1", "nodePools": []any{pool("p", 1)},
		"ipAllocationPolicy": map[string]any{"useIpAliases": true, "clusterSecondaryRangeName": "pods"}}})
	if status, msg, f, _ := errorOf(t, body); code != 400 || f != "cluster.ipAllocationPolicy.clusterSecondaryRangeName" {
		t.Errorf("a second cluster on priv's pod range: HTTP %d %s %s %q", code, status, f, msg)
	}

	// Only the authorized network (and the cluster's own machines) get in:
	// the engine's machine address 127.0.0.1 is not authorized either.
	checkReach(t, []string{private}, []string{"127.77.0.5"}, []string{"127.88.0.5", "127.0.0.1"})
	e.Gcloud("container", "clusters", "get-credentials", "priv", "--zone", zone, "--internal-ip")
	if server := e.Kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"); server != "https://"+private {
		t.Errorf("get-credentials --internal-ip wrote %q, want the private endpoint %s", server, private)
	}
	if out, err := e.Run("kubectl", "get", "nodes", "--request-timeout", "5s"); err == nil {
		t.Errorf("kubectl from the unauthorized 127.0.0.1 went through:\n%s", out)
	}
	// With no public endpoint, the plain command writes the private one
	// too: it is the cluster's endpoint.
	e.Gcloud("container", "clusters", "get-credentials", "priv", "--zone", zone)
	if server := e.Kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"); server != "https://"+private {
		t.Errorf("get-credentials wrote %q for a cluster with a private endpoint only", server)
	}

	// The document's update: a second network is let in at once.
	begin := time.Now()
	e.Gcloud("container", "clusters", "update", "priv", "--zone", zone, "--async",
		"--enable-master-authorized-networks", "--master-authorized-networks", "127.77.0.0/16,127.78.0.0/16")
	e.Eventually(10*time.Second, func() error { return harness.Reach("127.78.0.5", private) })
	t.Logf("authorized networks update: effective %v after the request", time.Since(begin).Round(time.Millisecond))
	e.Eventually(30*time.Second, func() error {
		if ops := e.Gcloud("container", "operations", "list", "--zone", zone, "--filter", "status!=DONE", "--format", "value(name)"); strings.TrimSpace(ops) != "" {
			return fmt.Errorf("running: %s", ops)
		}
		return nil
	})
	checkReach(t, []string{private}, []string{"127.77.0.5", "127.78.0.5"}, []string{"127.88.0.5"})
	if got := e.Gcloud("container", "clusters", "describe", "priv", "--zone", zone, "--format", "value(masterAuthorizedNetworksConfig.cidrBlocks[].cidrBlock.list())"); strings.TrimSpace(got) != "127.77.0.0/16,127.78.0.0/16" {
		t.Errorf("authorized networks after the update: %q", got)
	}

	// Let this machine in, and look at the cluster with kubectl.
	e.Gcloud("container", "clusters", "update", "priv", "--zone", zone,
		"--enable-master-authorized-networks", "--master-authorized-networks", "127.77.0.0/16,127.78.0.0/16,127.0.0.1/32")
	subnet, pods := netip.MustParsePrefix("10.10.0.0/20"), netip.MustParsePrefix("10.20.0.0/16")
	nodes := e.Kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address} {.spec.podCIDR} {.status.addresses[?(@.type=="ExternalIP")].address}{"\n"}{end}`)
	lines := strings.Split(strings.TrimSpace(nodes), "\n")
	if len(lines) != 2 {
		t.Fatalf("nodes of priv:\n%s", nodes)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		ip, ipErr := netip.ParseAddr(f[0])
		cidr, cidrErr := netip.ParsePrefix(f[len(f)-1])
		if len(f) != 2 || ipErr != nil || cidrErr != nil || !subnet.Contains(ip) || !pods.Contains(cidr.Addr()) || cidr.Bits() != 24 {
			t.Errorf("node (InternalIP podCIDR [ExternalIP]) %q: want an address in %s, a /24 of %s and no external address", l, subnet, pods)
		}
	}
	if ip := e.Kubectl("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"); ip != "10.30.0.1" {
		t.Errorf("kubernetes Service at %s, want the first address of the services range 10.30.0.0/20", ip)
	}

	// The peering GKE makes with the control plane's network, and its rules.
	hash := strings.TrimSuffix(strings.TrimPrefix(field(c, "privateClusterConfig.peeringName"), "gke-priv-"), "-peer")
	peer := "gke-priv-" + hash + "-peer"
	if got := e.Gcloud("compute", "networks", "peerings", "list", "--network", "vpc1", "--format", "value(peerings[].name,peerings[].state)"); strings.TrimSpace(got) != peer+"\tACTIVE" {
		t.Errorf("peerings of vpc1: %q, want %s ACTIVE", got, peer)
	}
	e.Gcloud("compute", "networks", "peerings", "update", peer, "--network", "vpc1", "--export-custom-routes")
	if got := e.Gcloud("compute", "networks", "peerings", "list", "--network", "vpc1", "--format", "value(peerings[].exportCustomRoutes)"); strings.TrimSpace(got) != "True" {
		t.Errorf("export custom routes after the update: %q", got)
	}
	// The document's on-premises access: the VPN's Cloud Router advertises
	// the control plane's range.
	e.Gcloud("compute", "routers", "create", "onprem", "--network", "vpc1", "--region", "us-central1", "--asn", "65010",
		"--advertisement-mode", "custom", "--set-advertisement-groups", "all_subnets", "--set-advertisement-ranges", "172.16.0.32/28")
	if got := e.Gcloud("compute", "routers", "describe", "onprem", "--region", "us-central1", "--format", "value(bgp.advertisedIpRanges[0].range)"); strings.TrimSpace(got) != "172.16.0.32/28" {
		t.Errorf("the router advertises %q", got)
	}
	rules := e.Gcloud("compute", "firewall-rules", "list", "--filter", "name~^gke-priv-", "--format", "value(name,sourceRanges.list(),targetTags.list())")
	for _, want := range []string{
		"gke-priv-" + hash + "-master\t172.16.0.32/28\tgke-priv-" + hash + "-node",
		"gke-priv-" + hash + "-vms\t10.10.0.0/20\t",
		"gke-priv-" + hash + "-all\t10.20.0.0/16\t",
		"gke-priv-" + hash + "-hc\t35.191.0.0/16,130.211.0.0/22\t",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("firewall rules of priv have no %q:\n%s", want, rules)
		}
	}
	// A subnetwork over the control plane's range is refused: the range
	// is in the peered network.
	if out, err := e.Run("gcloud", append([]string{"compute", "networks", "subnets", "create", "over-cp", "--network", "vpc1", "--range", "172.16.0.0/24"}, region...)...); err == nil || !strings.Contains(out, "peered network") {
		t.Errorf("a subnetwork over the control-plane range: %v\n%s", err, out)
	}
	// With no public endpoint, an IP rotation moves the private one; both
	// admit only the authorized networks meanwhile.
	e.Gcloud("container", "clusters", "update", "priv", "--zone", zone, "--start-ip-rotation", "--quiet")
	c = describeCluster(t, e, "priv")
	newPrivate := field(c, "privateClusterConfig.privateEndpoint")
	if newPrivate == private || field(c, "endpoint") != newPrivate || field(c, "controlPlaneEndpointsConfig.ipEndpointsConfig.privateEndpoint") != newPrivate {
		t.Errorf("after the start of the IP rotation: endpoint %s, private endpoint %s (was %s)", field(c, "endpoint"), newPrivate, private)
	}
	checkReach(t, []string{private, newPrivate}, []string{"127.77.0.5"}, []string{"127.88.0.5"})
	completeIPRotation(t, e, "priv")
	checkReach(t, []string{newPrivate}, []string{"127.77.0.5", "127.0.0.1"}, []string{"127.88.0.5"})
	checkReach(t, []string{private}, nil, []string{"127.77.0.5"})
	if nodes := e.Kubectl("get", "nodes", "--no-headers"); strings.Count(nodes, " Ready ") != 2 {
		t.Errorf("nodes after the rotation:\n%s", nodes)
	}

	// Private nodes behind a public endpoint too; ranges given by size and
	// by range, and 64 pods per node (a /25 each).
	e.Gcloud("container", "clusters", "create", "pub", "--zone", zone, "--num-nodes", "1",
		"--network", "vpc1", "--subnetwork", "sub1", "--enable-ip-alias",
		"--cluster-ipv4-cidr", "/16", "--services-ipv4-cidr", "10.40.0.0/20", "--default-max-pods-per-node", "64",
		"--enable-private-nodes", "--master-ipv4-cidr", "172.16.0.48/28",
		"--enable-master-authorized-networks", "--master-authorized-networks", "127.77.0.0/16")
	c = describeCluster(t, e, "pub")
	public, pubPrivate := field(c, "endpoint"), field(c, "privateClusterConfig.privateEndpoint")
	if public == "" || pubPrivate == "" || public == pubPrivate || field(c, "privateClusterConfig.publicEndpoint") != public || field(c, "nodeIpv4CidrSize") != "25" {
		t.Errorf("pub: endpoint %q, private %q, publicEndpoint %q, nodeIpv4CidrSize %s", public, pubPrivate, field(c, "privateClusterConfig.publicEndpoint"), field(c, "nodeIpv4CidrSize"))
	}
	podsRange, servicesRange := field(c, "ipAllocationPolicy.clusterSecondaryRangeName"), field(c, "ipAllocationPolicy.servicesSecondaryRangeName")
	ranges := e.Gcloud(append([]string{"compute", "networks", "subnets", "describe", "sub1", "--format", "value(secondaryIpRanges[].rangeName.list(),secondaryIpRanges[].ipCidrRange.list())"}, region...)...)
	pubPods := field(c, "clusterIpv4Cidr")
	if p, err := netip.ParsePrefix(pubPods); err != nil || p.Bits() != 16 || !strings.HasPrefix(podsRange, "gke-pub-pods-") ||
		strings.TrimSpace(ranges) != "pods,services,"+podsRange+","+servicesRange+"\t10.20.0.0/16,10.30.0.0/20,"+pubPods+",10.40.0.0/20" {
		t.Errorf("pub's ranges %s (%s, %s) in sub1: %q", pubPods, podsRange, servicesRange, ranges)
	}
	checkReach(t, []string{public, pubPrivate}, []string{"127.77.0.5"}, []string{"127.88.0.5"})

	// During an IP rotation, the old and the new endpoint both admit only
	// the authorized networks.
	e.Gcloud("container", "clusters", "update", "pub", "--zone", zone, "--start-ip-rotation", "--quiet")
	rotated := field(describeCluster(t, e, "pub"), "endpoint")
	if rotated == public {
		t.Fatal("the IP rotation kept the endpoint")
	}
	checkReach(t, []string{public, rotated, pubPrivate}, []string{"127.77.0.5"}, []string{"127.88.0.5"})
	completeIPRotation(t, e, "pub")
	checkReach(t, []string{rotated, pubPrivate}, []string{"127.77.0.5"}, []string{"127.88.0.5"})
	// Turned off, every source gets in again.
	e.Gcloud("container", "clusters", "update", "pub", "--zone", zone, "--no-enable-master-authorized-networks")
	checkReach(t, []string{rotated, pubPrivate}, []string{"127.77.0.5", "127.88.0.5"}, nil)

	// A cluster given nothing: the default network, a pod range GKE adds
	// to its subnetwork, public nodes with an external address.
	e.Gcloud("container", "clusters", "create", "plain", "--zone", zone, "--num-nodes", "1")
	c = describeCluster(t, e, "plain")
	if got := e.Gcloud(append([]string{"compute", "networks", "subnets", "describe", "default", "--format", "value(secondaryIpRanges[].ipCidrRange.list())"}, region...)...); strings.TrimSpace(got) != field(c, "clusterIpv4Cidr") || field(c, "servicesIpv4Cidr") != "34.118.224.0/20" {
		t.Errorf("plain: pods %s, services %s; default subnetwork's secondary ranges %q", field(c, "clusterIpv4Cidr"), field(c, "servicesIpv4Cidr"), got)
	}
	e.Gcloud("container", "clusters", "get-credentials", "plain", "--zone", zone)
	if ext := e.Kubectl("get", "nodes", "-o", `jsonpath={.items[0].status.addresses[?(@.type=="ExternalIP")].address}`); ext == "" {
		t.Error("a node of a public cluster has no external address")
	}

	// The nodes as Compute Engine instances: private ones have no
	// external address.
	instances := e.Gcloud("compute", "instances", "list", "--format", "value(name,networkInterfaces[0].networkIP,networkInterfaces[0].accessConfigs[0].natIP)")
	counts := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(instances), "\n") {
		f := strings.Split(l, "\t")
		cluster := strings.SplitN(strings.TrimPrefix(f[0], "gke-"), "-", 2)[0]
		counts[cluster]++
		if (cluster == "plain") != (len(f) == 3 && f[2] != "") {
			t.Errorf("instance %q: only plain's nodes have an external address", l)
		}
		if ip, err := netip.ParseAddr(f[1]); cluster != "plain" && (err != nil || !subnet.Contains(ip)) {
			t.Errorf("instance %q: its internal address is not in %s", l, subnet)
		}
	}
	if counts["priv"] != 2 || counts["pub"] != 1 || counts["plain"] != 1 {
		t.Errorf("instances:\n%s", instances)
	}

	// Deleting the clusters removes what GKE made for them; then the
	// network goes.
	e.Gcloud("container", "clusters", "delete", "priv", "pub", "plain", "--zone", zone, "--quiet")
	if got := e.Gcloud("compute", "networks", "peerings", "list", "--network", "vpc1", "--format", "value(peerings[].name)"); strings.TrimSpace(got) != "" {
		t.Errorf("peerings left: %q", got)
	}
	if got := e.Gcloud("compute", "firewall-rules", "list", "--filter", "name~^gke-", "--format", "value(name)"); strings.TrimSpace(got) != "" {
		t.Errorf("firewall rules left: %q", got)
	}
	if got := e.Gcloud(append([]string{"compute", "networks", "subnets", "describe", "sub1", "--format", "value(secondaryIpRanges[].rangeName.list())"}, region...)...); strings.TrimSpace(got) != "pods,services" {
		t.Errorf("secondary ranges of sub1 left: %q", got)
	}
	e.Gcloud("compute", "routers", "delete", "onprem", "--region", "us-central1", "--quiet")
	for _, rr := range [][]string{
		{"restricted.googleapis.com.", "googleapis", "A"}, {"private.googleapis.com.", "googleapis", "A"},
		{"*.googleapis.com.", "googleapis", "CNAME"}, {"gcr.io.", "gcr", "A"}, {"*.gcr.io.", "gcr", "CNAME"},
	} {
		e.Gcloud("dns", "record-sets", "delete", rr[0], "--zone", rr[1], "--type", rr[2])
	}
	e.Gcloud("dns", "managed-zones", "delete", "gcr", "--quiet")
	e.Gcloud("dns", "managed-zones", "delete", "googleapis", "--quiet")
	e.Gcloud("compute", "firewall-rules", "delete", "allow-restricted", "--quiet")
	e.Gcloud("compute", "routes", "delete", "restricted-apis", "--quiet")
	e.Gcloud(append([]string{"compute", "networks", "subnets", "delete", "sub1", "--quiet"}, region...)...)
	e.Gcloud("compute", "networks", "delete", "vpc1", "--quiet")
}

// refusalsChangeNothing sends bad private and VPC-native clusters (and
// authorized networks) and checks each is INVALID_ARGUMENT naming the
// field, with nothing created.
func refusalsChangeNothing(t *testing.T, e *harness.Engine) {
	tok := e.Token()
	private := func(change func(c map[string]any)) map[string]any {
		c := map[string]any{
			"name": "bad", "network": "vpc1", "subnetwork": "sub1", "nodePools": []any{pool("p", 1)},
			"ipAllocationPolicy":   map[string]any{"useIpAliases": true, "clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"},
			"privateClusterConfig": map[string]any{"enablePrivateNodes": true, "enablePrivateEndpoint": true, "masterIpv4CidrBlock": "172.16.0.32/28"},
		}
		change(c)
		return map[string]any{"cluster": c}
	}
	master := func(cidr string) func(map[string]any) {
		return func(c map[string]any) { c["privateClusterConfig"].(map[string]any)["masterIpv4CidrBlock"] = cidr }
	}
	policy := func(k string, v any) func(map[string]any) {
		return func(c map[string]any) { c["ipAllocationPolicy"].(map[string]any)[k] = v }
	}
	authorized := func(cidrs ...string) func(map[string]any) {
		return func(c map[string]any) {
			var blocks []any
			for _, b := range cidrs {
				blocks = append(blocks, map[string]any{"cidrBlock": b})
			}
			c["controlPlaneEndpointsConfig"] = map[string]any{"ipEndpointsConfig": map[string]any{"authorizedNetworksConfig": map[string]any{"enabled": true, "cidrBlocks": blocks}}}
		}
	}
	many := make([]string, 51)
	for i := range many {
		many[i] = fmt.Sprintf("127.77.%d.0/24", i)
	}
	const blocks = "cluster.controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.cidrBlocks"
	cases := []struct {
		name   string
		change func(map[string]any)
		field  string
	}{
		{"control plane not a /28", master("172.16.0.32/27"), "cluster.privateClusterConfig.masterIpv4CidrBlock"},
		{"control plane with host bits", master("172.16.0.33/28"), "cluster.privateClusterConfig.masterIpv4CidrBlock"},
		{"control plane over the subnetwork", master("10.10.0.16/28"), "cluster.privateClusterConfig.masterIpv4CidrBlock"},
		{"control plane over a secondary range", master("10.20.0.0/28"), "cluster.privateClusterConfig.masterIpv4CidrBlock"},
		{"private nodes without a control-plane range", master(""), "cluster.privateClusterConfig.masterIpv4CidrBlock"},
		{"private endpoint without private nodes", func(c map[string]any) {
			c["privateClusterConfig"] = map[string]any{"enablePrivateEndpoint": true}
		}, "cluster.privateClusterConfig.enablePrivateEndpoint"},
		{"unknown secondary range", policy("clusterSecondaryRangeName", "nope"), "cluster.ipAllocationPolicy.clusterSecondaryRangeName"},
		{"pod range over the subnetwork", func(c map[string]any) {
			c["ipAllocationPolicy"] = map[string]any{"useIpAliases": true, "clusterIpv4CidrBlock": "10.10.0.0/16"}
		}, "cluster.ipAllocationPolicy.clusterIpv4CidrBlock"},
		{"bad range size", func(c map[string]any) {
			c["ipAllocationPolicy"] = map[string]any{"useIpAliases": true, "servicesIpv4CidrBlock": "/40"}
		}, "cluster.ipAllocationPolicy.servicesIpv4CidrBlock"},
		{"routes-based private cluster", func(c map[string]any) {
			c["ipAllocationPolicy"] = map[string]any{"useRoutes": true}
		}, "cluster.privateClusterConfig.enablePrivateNodes"},
		{"routes-based with secondary ranges", func(c map[string]any) {
			c["ipAllocationPolicy"].(map[string]any)["useRoutes"] = true
			delete(c, "privateClusterConfig")
		}, "cluster.ipAllocationPolicy.clusterSecondaryRangeName"},
		{"custom network without a subnetwork", func(c map[string]any) { delete(c, "subnetwork") }, "cluster.subnetwork"},
		{"unknown network", func(c map[string]any) { c["network"] = "nope"; delete(c, "subnetwork") }, "cluster.network"},
		{"subnetwork of another network", func(c map[string]any) { c["subnetwork"] = "default" }, "cluster.subnetwork"},
		{"invalid authorized network", authorized("127.77.0.0/33"), blocks + "[0].cidrBlock"},
		{"authorized network with host bits", authorized("127.77.0.1/16"), blocks + "[0].cidrBlock"},
		{"everyone with a private endpoint only", authorized("0.0.0.0/0"), blocks + "[0].cidrBlock"},
		{"too many authorized networks", func(c map[string]any) {
			delete(c, "privateClusterConfig")
			authorized(many...)(c)
		}, blocks},
		{"too many pods per node", func(c map[string]any) {
			c["defaultMaxPodsConstraint"] = map[string]any{"maxPodsPerNode": "300"}
		}, "cluster.defaultMaxPodsConstraint.maxPodsPerNode"},
	}
	peeringsBefore := e.Gcloud("compute", "networks", "peerings", "list", "--format", "json")
	subnetBefore := e.Gcloud("compute", "networks", "subnets", "describe", "sub1", "--region", "us-central1", "--format", "json")
	rulesBefore := e.Gcloud("compute", "firewall-rules", "list", "--format", "value(name)")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.API("POST", clustersPath(e, zone), tok, private(tc.change))
			status, msg, field, _ := errorOf(t, body)
			if code != 400 || status != "INVALID_ARGUMENT" || field != tc.field {
				t.Errorf("HTTP %d %s field=%q %q; want INVALID_ARGUMENT on %s", code, status, field, msg, tc.field)
			}
		})
	}
	if _, body := e.API("GET", clustersPath(e, "-"), tok, nil); body["clusters"] != nil {
		t.Errorf("refused creates left clusters: %v", body["clusters"])
	}
	if after := e.Gcloud("compute", "networks", "peerings", "list", "--format", "json"); after != peeringsBefore {
		t.Errorf("refused creates changed the peerings:\n%s", after)
	}
	if after := e.Gcloud("compute", "networks", "subnets", "describe", "sub1", "--region", "us-central1", "--format", "json"); after != subnetBefore {
		t.Errorf("refused creates changed sub1:\n%s", after)
	}
	if after := e.Gcloud("compute", "firewall-rules", "list", "--format", "value(name)"); after != rulesBefore {
		t.Errorf("refused creates changed the firewall rules: %q", after)
	}
}

// TestRoutesBasedCluster: a routes-based cluster (--no-enable-ip-alias)
// takes its pods from --cluster-ipv4-cidr, its Services from the last /20
// of it, and gets a route per node to the node's pod range, which follows
// resizes and goes with the cluster.
func TestRoutesBasedCluster(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	for _, bad := range []struct{ args []string }{
		{[]string{"--cluster-ipv4-cidr", "10.96.0.0/22"}},
		{[]string{"--cluster-ipv4-cidr", "10.128.0.0/14"}}, // over the default subnetwork
	} {
		args := append([]string{"container", "clusters", "create", "bad", "--zone", zone, "--num-nodes", "1", "--no-enable-ip-alias"}, bad.args...)
		if out, err := e.Run("gcloud", args...); err == nil || !strings.Contains(out, "10.") {
			t.Errorf("%v: %v\n%s", bad.args, err, out)
		}
	}
	e.Gcloud("container", "clusters", "create", "rb", "--zone", zone, "--num-nodes", "2", "--no-enable-ip-alias", "--cluster-ipv4-cidr", "10.96.0.0/14")
	c := describeCluster(t, e, "rb")
	if field(c, "ipAllocationPolicy.useRoutes") != "true" || field(c, "clusterIpv4Cidr") != "10.96.0.0/14" || field(c, "servicesIpv4Cidr") != "10.99.240.0/20" {
		t.Errorf("rb: useRoutes %s, pods %s, services %s", field(c, "ipAllocationPolicy.useRoutes"), field(c, "clusterIpv4Cidr"), field(c, "servicesIpv4Cidr"))
	}
	if ip := e.Kubectl("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"); ip != "10.99.240.1" {
		t.Errorf("kubernetes Service at %s", ip)
	}
	// routes returns "destRange nextHopIp" of the cluster's node routes,
	// and the nodes' "podCIDR InternalIP", sorted.
	routes := func() (string, string) {
		r := e.Gcloud("compute", "routes", "list", "--filter", "description=k8s-node-route", "--format", "value(destRange,nextHopIp)", "--sort-by", "destRange")
		n := e.Kubectl("get", "nodes", "--sort-by", ".spec.podCIDR", "-o", `jsonpath={range .items[*]}{.spec.podCIDR}{"\t"}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}`)
		return strings.TrimSpace(r), strings.TrimSpace(n)
	}
	for _, size := range []string{"", "3", "1"} {
		if size != "" {
			e.Gcloud("container", "clusters", "resize", "rb", "--zone", zone, "--num-nodes", size, "--quiet")
		}
		if size == "3" {
			nodeRoutesCarryTraffic(t, e)
		}
		got, nodes := routes()
		want := 2
		if size != "" {
			want = int(size[0] - '0')
		}
		if got != nodes || len(strings.Split(got, "\n")) != want {
			t.Errorf("%d nodes: routes\n%s\nnodes\n%s", want, got, nodes)
		}
		// The cluster's DNS follows its size as GKE's kube-dns autoscaler
		// sets it: one replica on one node, never one alone on more.
		if replicas, dns := e.Kubectl("-n", "kube-system", "get", "deployment", "coredns", "-o", "jsonpath={.spec.replicas}"), min(want, 2); replicas != fmt.Sprint(dns) {
			t.Errorf("%d nodes: %s replicas of the cluster's DNS, want %d", want, replicas, dns)
		}
	}
	e.Gcloud("container", "clusters", "delete", "rb", "--zone", zone, "--quiet")
	if got, _ := e.Run("gcloud", "compute", "routes", "list", "--filter", "description=k8s-node-route", "--format", "value(name)"); strings.TrimSpace(got) != "" {
		t.Errorf("routes left after the cluster: %q", got)
	}
}

// nodeRoutesCarryTraffic checks, on a routes-based cluster, that a node's
// route is how its pods are reached from the other nodes: deleted, a pod
// there is unreachable from a pod on another node; made again, reachable.
func nodeRoutesCarryTraffic(t *testing.T, e *harness.Engine) {
	t.Helper()
	nodes := strings.Fields(e.Kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}`))
	if len(nodes) < 6 {
		t.Fatalf("nodes: %v", nodes)
	}
	for i, name := range []string{"server", "client"} {
		e.Kubectl("run", name, "--image=us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0",
			"--overrides", fmt.Sprintf(`{"apiVersion": "v1", "spec": {"nodeName": %q}}`, nodes[3*i]))
	}
	e.Kubectl("wait", "--for=condition=Ready", "pod/server", "pod/client", "--timeout=60s")
	defer e.Kubectl("delete", "pod", "server", "client", "--now")
	server := getPod(t, e, "server")
	reach := func() error {
		out, err := e.Run("kubectl", "exec", "client", "--", "timeout", "3", "wget", "-qO-", server.Status.PodIP+":8080")
		if err != nil || !strings.Contains(out, "Hostname: server") {
			return fmt.Errorf("the client does not reach the server: %v %s", err, out)
		}
		return nil
	}
	if err := reach(); err != nil {
		t.Fatal(err)
	}
	route := strings.TrimSpace(e.Gcloud("compute", "routes", "list", "--filter", "nextHopIp="+nodes[2], "--format", "value(name)"))
	e.Gcloud("compute", "routes", "delete", route, "--quiet")
	e.Eventually(10*time.Second, func() error {
		if reach() == nil {
			return fmt.Errorf("the server's node has no route, and its pod is still reachable")
		}
		return nil
	})
	e.Gcloud("compute", "routes", "create", route, "--network", "default", "--destination-range", nodes[1], "--next-hop-address", nodes[2], "--description", "k8s-node-route")
	e.Eventually(10*time.Second, reach)
}
