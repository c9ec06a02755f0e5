package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/auth"
	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/engine/fakeruntime"
	"github.com/kubeyard/kubeyard/internal/store"
)

// testEngine serves the engine's API over a fake runtime and an embedded
// etcd, until the test ends.
type testEngine struct {
	t     *testing.T
	srv   *httptest.Server
	token string
}

func newTestEngine(t *testing.T) *testEngine {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	te := &testEngine{t: t, token: "test-token"}
	mux := http.NewServeMux()
	te.srv = httptest.NewServer(mux)
	t.Cleanup(te.srv.Close)
	e, err := engine.New(context.Background(), engine.Config{DataDir: t.TempDir(), BaseURL: te.srv.URL, Store: st, Runtime: fakeruntime.New(),
		Identity: auth.Identity{Token: te.token, User: auth.DefaultUser}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(false) })
	mux.Handle("/", NewHandler(e))
	return te
}

// call sends a request and decodes the JSON answer.
func (te *testEngine) call(method, path string, body io.Reader) (int, map[string]any) {
	te.t.Helper()
	req, err := http.NewRequest(method, te.srv.URL+path, body)
	if err != nil {
		te.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+te.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		te.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &out); err != nil {
		te.t.Fatalf("%s %s: HTTP %d, not JSON: %q", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, out
}

// get is call for a GET that must succeed.
func (te *testEngine) get(path string) map[string]any {
	te.t.Helper()
	code, out := te.call("GET", path, nil)
	if code != 200 {
		te.t.Fatalf("GET %s: HTTP %d %v", path, code, out)
	}
	return out
}

// wait waits for a container operation (a selfLink or a name in location)
// to be DONE without error.
func (te *testEngine) wait(op map[string]any) {
	te.t.Helper()
	self, _ := op["selfLink"].(string)
	if self == "" || op["operationType"] == nil {
		return // not a GKE operation (Compute and DNS answer done)
	}
	path := strings.TrimPrefix(self, te.srv.URL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur := te.get(path)
		if cur["status"] == "DONE" {
			if cur["error"] != nil {
				te.t.Fatalf("operation %s failed: %v", cur["name"], cur["error"])
			}
			return
		}
		if time.Now().After(deadline) {
			te.t.Fatalf("operation %s not done: %v", cur["name"], cur)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fixture is the folder of recorded client requests beside the project.
func fixture(t *testing.T, name string) string {
	_, file, _, _ := runtimeCaller()
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("fixture %s: %v (../shared must be beside the repository)", name, err)
	}
	return path
}

var fingerprintRE = regexp.MustCompile(`"(fingerprint|labelFingerprint)": "[0-9a-f]+"`)

// replay sends every request of a recording (METHOD PATH BODY, a line
// each) as the client sent it, waits for each operation, and fails on the
// first refused. Fingerprints are the current ones (the recording's were
// another server's).
func (te *testEngine) replay(file string) {
	te.t.Helper()
	f, err := os.Open(file)
	if err != nil {
		te.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		method, rest, _ := strings.Cut(sc.Text(), " ")
		path, body, _ := strings.Cut(rest, " ")
		body = strings.ReplaceAll(body, "http://127.0.0.1:PORT", te.srv.URL)
		if m := fingerprintRE.FindStringSubmatch(body); m != nil {
			resource := strings.TrimSuffix(strings.Split(path, "?")[0], ":setResourceLabels")
			cur := te.get(resource)[m[1]]
			body = fingerprintRE.ReplaceAllString(body, fmt.Sprintf(`"%s": "%v"`, m[1], cur))
		}
		code, out := te.call(method, path, strings.NewReader(body))
		if code != 200 {
			te.t.Fatalf("%s %s: HTTP %d %v", method, path, code, out)
		}
		te.wait(out)
	}
	if err := sc.Err(); err != nil {
		te.t.Fatal(err)
	}
}

// value is the value at a dotted path ("nodePools.0.name") of a JSON
// document, or nil.
func value(doc any, path string) any {
	for _, seg := range strings.Split(path, ".") {
		switch t := doc.(type) {
		case map[string]any:
			doc = t[seg]
		case []any:
			var i int
			if _, err := fmt.Sscan(seg, &i); err != nil || i >= len(t) {
				return nil
			}
			doc = t[i]
		default:
			return nil
		}
	}
	return doc
}

// expect checks read-back fields of a resource: want maps a path to its
// value, or to present (the field must be there, whatever it holds).
func (te *testEngine) expect(resource string, want map[string]any) map[string]any {
	te.t.Helper()
	doc := te.get(resource)
	for path, w := range want {
		got := value(doc, path)
		switch {
		case w == present && got == nil:
			te.t.Errorf("%s: %s is missing", resource, path)
		case w != present && fmt.Sprint(got) != fmt.Sprint(w):
			te.t.Errorf("%s: %s = %v, want %v", resource, path, got, w)
		}
	}
	return doc
}

// present stands for any value in expect.
var present = struct{ name string }{"present"}

const (
	tfProject = "/compute/v1/projects/bar-project"
	tfCluster = "/v1/projects/bar-project/locations/us-central1-a/clusters/"
)

// The fields of a cluster the provider reads back without checking that
// they are there (resourceContainerClusterRead and its flatten functions).
var clusterReadBack = map[string]any{
	"legacyAbac": present, "networkConfig.network": present, "networkConfig.subnetwork": present,
	"networkConfig.defaultSnatStatus": present, "loggingConfig.componentConfig": present, "monitoringConfig.componentConfig": present,
	"controlPlaneEndpointsConfig.ipEndpointsConfig.enabled": true, "shieldedNodes.enabled": true, "releaseChannel.channel": "REGULAR",
	"nodePoolDefaults.nodeConfigDefaults.loggingConfig.variantConfig.variant": "DEFAULT", "databaseEncryption.state": "DECRYPTED",
	"maintenancePolicy.resourceVersion": present, "masterAuth.clusterCaCertificate": present, "ipAllocationPolicy.stackType": "IPV4",
	"ipAllocationPolicy.useIpAliases": true, "autopilot": present, "binaryAuthorization": present, "notificationConfig.pubsub": present,
	"autoscaling.autoscalingProfile": "BALANCED", "addonsConfig": present, "defaultMaxPodsConstraint.maxPodsPerNode": "110",
	"currentMasterVersion": present, "currentNodeVersion": present, "endpoint": present, "selfLink": present, "status": "RUNNING",
	"location": "us-central1-a", "locations.0": "us-central1-a", "labelFingerprint": present,
}

// The fields of a node pool the provider reads back (flattenNodePool).
var poolReadBack = map[string]any{
	"instanceGroupUrls.0": present, "config.machineType": present, "config.loggingConfig.variantConfig.variant": "DEFAULT",
	"networkConfig.podRange": present, "networkConfig.podIpv4CidrBlock": present, "version": present, "locations.0": "us-central1-a",
	"maxPodsConstraint.maxPodsPerNode": "110", "upgradeSettings.strategy": "SURGE", "status": "RUNNING", "autoscaling": present,
}

// expectGroups checks the pool's instance group managers, from which the
// provider reads the node count: one per zone, each its size.
func (te *testEngine) expectGroups(pool map[string]any, size int) {
	te.t.Helper()
	for _, u := range value(pool, "instanceGroupUrls").([]any) {
		igm := strings.TrimPrefix(u.(string), te.srv.URL)
		doc := te.expect(igm, map[string]any{"selfLink": u, "targetSize": size, "instanceGroup": present, "instanceTemplate": present,
			"zone": present, "currentActions.none": size, "name": present})
		group := te.expect(strings.TrimPrefix(doc["instanceGroup"].(string), te.srv.URL), map[string]any{"size": size})
		zone := strings.TrimPrefix(value(group, "zone").(string), te.srv.URL)
		list := te.get(zone + "/instanceGroupManagers")
		if n := len(value(list, "items").([]any)); n < 1 {
			te.t.Errorf("%s: %d instance group managers", zone, n)
		}
		code, managed := te.call("POST", igm+"/listManagedInstances", nil)
		if n := len(value(managed, "managedInstances").([]any)); code != 200 || n != size {
			te.t.Errorf("%s: %d managed instances (HTTP %d), want %d", igm, n, code, size)
		}
	}
}

// TestTerraformRequestsAreAccepted replays what Terraform's Google
// provider sends for a network, a subnetwork, a firewall rule, a cluster
// and a node pool.
func TestTerraformRequestsAreAccepted(t *testing.T) {
	te := newTestEngine(t)
	te.replay(filepath.Join(fixture(t, "terraform-google"), "requests.txt"))
	// remove_default_node_pool = true: the provider deletes it after the
	// create (a request without a body, not recorded).
	code, op := te.call("DELETE", tfCluster+"tf-cluster/nodePools/default-pool", nil)
	if code != 200 {
		t.Fatalf("deleting the default pool: HTTP %d %v", code, op)
	}
	te.wait(op)

	te.expect(tfProject+"/global/networks/tf-vpc", map[string]any{"autoCreateSubnetworks": false, "routingConfig.routingMode": "REGIONAL",
		"mtu": 1460, "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL", "selfLink": present, "id": present})
	te.expect(tfProject+"/global/firewalls/tf-allow-web", map[string]any{"direction": "INGRESS", "priority": 1000, "sourceRanges.0": "10.0.0.0/8",
		"allowed.0.IPProtocol": "tcp", "allowed.0.ports.0": "80", "network": present, "selfLink": present})
	te.expect(tfProject+"/regions/us-central1/subnetworks/tf-subnet", map[string]any{"ipCidrRange": "10.10.0.0/20", "privateIpGoogleAccess": false,
		"secondaryIpRanges.1.rangeName": "tf-services", "fingerprint": present, "gatewayAddress": "10.10.0.1", "region": present})
	c := te.expect(tfCluster+"tf-cluster", clusterReadBack)
	te.expect(tfCluster+"tf-cluster", map[string]any{"initialNodeCount": 1, "ipAllocationPolicy.clusterSecondaryRangeName": "tf-pods",
		"ipAllocationPolicy.servicesSecondaryRangeName": "tf-services", "nodePools.0.name": "tf-pool", "privateClusterConfig": nil})
	if pools := value(c, "nodePools").([]any); len(pools) != 1 {
		t.Errorf("node pools: %v", pools)
	}
	pool := te.expect(tfCluster+"tf-cluster/nodePools/tf-pool", poolReadBack)
	te.expect(tfCluster+"tf-cluster/nodePools/tf-pool", map[string]any{"initialNodeCount": 2, "config.oauthScopes.0": present})
	te.expectGroups(pool, 2)
	// The groups follow a resize.
	code, op = te.call("POST", tfCluster+"tf-cluster/nodePools/tf-pool:setSize", strings.NewReader(`{"nodeCount": 3}`))
	if code != 200 {
		t.Fatalf("resize: HTTP %d %v", code, op)
	}
	te.wait(op)
	te.expectGroups(pool, 3)
}

// TestTerraformPrivateClusterRequestsAreAccepted replays the private
// cluster configuration: router, DNS zone and records, route, egress
// rule, flow-logged subnetwork, private cluster, node pool, and the
// updates.
func TestTerraformPrivateClusterRequestsAreAccepted(t *testing.T) {
	te := newTestEngine(t)
	te.replay(filepath.Join(fixture(t, "terraform-google"), "requests-private.txt"))

	te.expect(tfProject+"/regions/us-central1/routers/tf2-router", map[string]any{"bgp.keepaliveInterval": 20, "bgp.asn": 64514,
		"bgp.advertiseMode": "CUSTOM", "bgp.advertisedIpRanges.0.range": "172.16.0.32/28"})
	te.expect(tfProject+"/global/routes/tf2-restricted-apis", map[string]any{"destRange": "199.36.153.4/30", "priority": 1000,
		"nextHopGateway": present, "network": present})
	te.expect(tfProject+"/global/firewalls/tf2-egress-restricted-apis", map[string]any{"direction": "EGRESS", "destinationRanges.0": "199.36.153.4/30"})
	te.expect(tfProject+"/regions/us-central1/subnetworks/tf2-nodes", map[string]any{"privateIpGoogleAccess": true, "enableFlowLogs": true,
		"logConfig.enable": true, "logConfig.aggregationInterval": "INTERVAL_5_SEC", "logConfig.flowSampling": 1,
		"logConfig.metadata": "INCLUDE_ALL_METADATA", "logConfig.filterExpr": "true"})
	zone := "/dns/v1/projects/bar-project/managedZones/tf2-googleapis"
	te.expect(zone+"/rrsets?name=restricted.googleapis.com.&type=A", map[string]any{"rrsets.0.rrdatas.3": "199.36.153.7", "rrsets.0.ttl": 300})
	te.expect(zone+"/rrsets?name=*.googleapis.com.&type=CNAME", map[string]any{"rrsets.0.rrdatas.0": "restricted.googleapis.com."})
	te.expect(zone+"/changes/2", map[string]any{"status": "done", "additions.0.type": "A"})

	te.expect(tfCluster+"tf2-private", clusterReadBack)
	te.expect(tfCluster+"tf2-private", map[string]any{
		"privateClusterConfig.masterIpv4CidrBlock": "172.16.0.32/28", "privateClusterConfig.peeringName": present,
		"privateClusterConfig.enablePrivateNodes": true, "networkConfig.defaultEnablePrivateNodes": true,
		"controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint":                            true,
		"controlPlaneEndpointsConfig.ipEndpointsConfig.privateEndpoint":                                 present,
		"controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.cidrBlocks.0.cidrBlock": "127.0.0.0/9",
		"masterAuthorizedNetworksConfig.enabled":                                                        true,
		"maintenancePolicy.window.dailyMaintenanceWindow.startTime":                                     "03:00",
		"maintenancePolicy.window.dailyMaintenanceWindow.duration":                                      "PT4H0M0S",
		"resourceLabels.team": "infra", "initialNodeCount": 1,
	})
	pool := te.expect(tfCluster+"tf2-private/nodePools/tf2-main", poolReadBack)
	te.expect(tfCluster+"tf2-private/nodePools/tf2-main", map[string]any{"config.labels.pool": "main", "config.tags.0": "web",
		"config.machineType": "e2-medium", "networkConfig.enablePrivateNodes": true})
	te.expectGroups(pool, 2)
}

func runtimeCaller() (uintptr, string, int, bool) { return runtime.Caller(0) }
