package apitest

import (
	"path/filepath"
	"strings"
)

// Where the recordings put their resources.
const (
	tfProject = "/compute/v1/projects/bar-project"
	tfCluster = "/v1/projects/bar-project/locations/us-central1-a/clusters/"
)

// The fields of a cluster the provider reads back without checking that
// they are there (resourceContainerClusterRead and its flatten functions).
var clusterReadBack = map[string]any{
	"legacyAbac": Present, "networkConfig.network": Present, "networkConfig.subnetwork": Present,
	"networkConfig.defaultSnatStatus": Present, "loggingConfig.componentConfig": Present, "monitoringConfig.componentConfig": Present,
	"controlPlaneEndpointsConfig.ipEndpointsConfig.enabled": true, "shieldedNodes.enabled": true, "releaseChannel.channel": "REGULAR",
	"nodePoolDefaults.nodeConfigDefaults.loggingConfig.variantConfig.variant": "DEFAULT", "databaseEncryption.state": "DECRYPTED",
	"maintenancePolicy.resourceVersion": Present, "masterAuth.clusterCaCertificate": Present, "ipAllocationPolicy.stackType": "IPV4",
	"ipAllocationPolicy.useIpAliases": true, "autopilot": Present, "binaryAuthorization": Present, "notificationConfig.pubsub": Present,
	"autoscaling.autoscalingProfile": "BALANCED", "addonsConfig": Present, "defaultMaxPodsConstraint.maxPodsPerNode": "110",
	"currentMasterVersion": Present, "currentNodeVersion": Present, "endpoint": Present, "selfLink": Present, "status": "RUNNING",
	"location": "us-central1-a", "locations.0": "us-central1-a", "labelFingerprint": Present,
}

// The fields of a node pool the provider reads back (flattenNodePool).
var poolReadBack = map[string]any{
	"instanceGroupUrls.0": Present, "config.machineType": Present, "config.loggingConfig.variantConfig.variant": "DEFAULT",
	"networkConfig.podRange": Present, "networkConfig.podIpv4CidrBlock": Present, "version": Present, "locations.0": "us-central1-a",
	"maxPodsConstraint.maxPodsPerNode": "110", "upgradeSettings.strategy": "SURGE", "status": "RUNNING", "autoscaling": Present,
}

// expectGroups checks the pool's instance group managers, from which the
// provider reads the node count: one per zone, each its size.
func (c *Client) expectGroups(pool map[string]any, size int) {
	c.T.Helper()
	for _, u := range Value(pool, "instanceGroupUrls").([]any) {
		igm := strings.TrimPrefix(u.(string), c.Base)
		doc := c.Expect(igm, map[string]any{"selfLink": u, "targetSize": size, "instanceGroup": Present, "instanceTemplate": Present,
			"zone": Present, "currentActions.none": size, "name": Present})
		group := c.Expect(strings.TrimPrefix(doc["instanceGroup"].(string), c.Base), map[string]any{"size": size})
		zone := strings.TrimPrefix(Value(group, "zone").(string), c.Base)
		list := c.Get(zone + "/instanceGroupManagers")
		if n := len(Value(list, "items").([]any)); n < 1 {
			c.T.Errorf("%s: %d instance group managers", zone, n)
		}
		code, managed := c.Call("POST", igm+"/listManagedInstances", nil)
		if n := len(Value(managed, "managedInstances").([]any)); code != 200 || n != size {
			c.T.Errorf("%s: %d managed instances (HTTP %d), want %d", igm, n, code, size)
		}
	}
}

// TerraformCluster replays what Terraform's Google provider (v7) sends for
// a custom network, a subnetwork, a firewall rule, a VPC-native cluster
// without its default pool and a node pool, then checks every field it
// reads back, and that the pool's instance groups follow a resize.
func (c *Client) TerraformCluster() {
	c.T.Helper()
	t := c.T
	c.Replay(filepath.Join(Fixture(t, "terraform-google"), "requests.txt"))
	// remove_default_node_pool = true: the provider deletes it after the
	// create (a request without a body, not recorded).
	c.Must("DELETE", tfCluster+"tf-cluster/nodePools/default-pool", "")

	c.Expect(tfProject+"/global/networks/tf-vpc", map[string]any{"autoCreateSubnetworks": false, "routingConfig.routingMode": "REGIONAL",
		"mtu": 1460, "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL", "selfLink": Present, "id": Present})
	c.Expect(tfProject+"/global/firewalls/tf-allow-web", map[string]any{"direction": "INGRESS", "priority": 1000, "sourceRanges.0": "10.0.0.0/8",
		"allowed.0.IPProtocol": "tcp", "allowed.0.ports.0": "80", "network": Present, "selfLink": Present})
	c.Expect(tfProject+"/regions/us-central1/subnetworks/tf-subnet", map[string]any{"ipCidrRange": "10.10.0.0/20", "privateIpGoogleAccess": false,
		"secondaryIpRanges.1.rangeName": "tf-services", "fingerprint": Present, "gatewayAddress": "10.10.0.1", "region": Present})
	cluster := c.Expect(tfCluster+"tf-cluster", clusterReadBack)
	c.Expect(tfCluster+"tf-cluster", map[string]any{"initialNodeCount": 1, "ipAllocationPolicy.clusterSecondaryRangeName": "tf-pods",
		"ipAllocationPolicy.servicesSecondaryRangeName": "tf-services", "nodePools.0.name": "tf-pool", "privateClusterConfig": nil})
	if pools := Value(cluster, "nodePools").([]any); len(pools) != 1 {
		t.Errorf("node pools: %v", pools)
	}
	pool := c.Expect(tfCluster+"tf-cluster/nodePools/tf-pool", poolReadBack)
	c.Expect(tfCluster+"tf-cluster/nodePools/tf-pool", map[string]any{"initialNodeCount": 2, "config.oauthScopes.0": Present})
	c.expectGroups(pool, 2)
	// The groups follow a resize.
	c.Must("POST", tfCluster+"tf-cluster/nodePools/tf-pool:setSize", `{"nodeCount": 3}`)
	c.expectGroups(pool, 3)
}

// TerraformPrivateCluster replays the provider's private-cluster
// configuration (router, DNS zone and its records through changes, route,
// egress rule, flow-logged subnetwork, private cluster with authorized
// networks and a maintenance window, node pool, then the updates of the
// authorized networks, the window and a label) and checks what it reads
// back.
func (c *Client) TerraformPrivateCluster() {
	c.T.Helper()
	t := c.T
	c.Replay(filepath.Join(Fixture(t, "terraform-google"), "requests-private.txt"))

	c.Expect(tfProject+"/regions/us-central1/routers/tf2-router", map[string]any{"bgp.keepaliveInterval": 20, "bgp.asn": 64514,
		"bgp.advertiseMode": "CUSTOM", "bgp.advertisedIpRanges.0.range": "172.16.0.32/28"})
	c.Expect(tfProject+"/global/routes/tf2-restricted-apis", map[string]any{"destRange": "199.36.153.4/30", "priority": 1000,
		"nextHopGateway": Present, "network": Present})
	c.Expect(tfProject+"/global/firewalls/tf2-egress-restricted-apis", map[string]any{"direction": "EGRESS", "destinationRanges.0": "199.36.153.4/30"})
	c.Expect(tfProject+"/regions/us-central1/subnetworks/tf2-nodes", map[string]any{"privateIpGoogleAccess": true, "enableFlowLogs": true,
		"logConfig.enable": true, "logConfig.aggregationInterval": "INTERVAL_5_SEC", "logConfig.flowSampling": 1,
		"logConfig.metadata": "INCLUDE_ALL_METADATA", "logConfig.filterExpr": "true"})
	zone := "/dns/v1/projects/bar-project/managedZones/tf2-googleapis"
	c.Expect(zone+"/rrsets?name=restricted.googleapis.com.&type=A", map[string]any{"rrsets.0.rrdatas.3": "199.36.153.7", "rrsets.0.ttl": 300})
	c.Expect(zone+"/rrsets?name=*.googleapis.com.&type=CNAME", map[string]any{"rrsets.0.rrdatas.0": "restricted.googleapis.com."})
	c.Expect(zone+"/changes/2", map[string]any{"status": "done", "additions.0.type": "A"})

	c.Expect(tfCluster+"tf2-private", clusterReadBack)
	c.Expect(tfCluster+"tf2-private", map[string]any{
		"privateClusterConfig.masterIpv4CidrBlock": "172.16.0.32/28", "privateClusterConfig.peeringName": Present,
		"privateClusterConfig.enablePrivateNodes": true, "networkConfig.defaultEnablePrivateNodes": true,
		"controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint":                            true,
		"controlPlaneEndpointsConfig.ipEndpointsConfig.privateEndpoint":                                 Present,
		"controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.cidrBlocks.0.cidrBlock": "127.0.0.0/9",
		"masterAuthorizedNetworksConfig.enabled":                                                        true,
		"maintenancePolicy.window.dailyMaintenanceWindow.startTime":                                     "03:00",
		"maintenancePolicy.window.dailyMaintenanceWindow.duration":                                      "PT4H0M0S",
		"resourceLabels.team": "infra", "initialNodeCount": 1,
	})
	pool := c.Expect(tfCluster+"tf2-private/nodePools/tf2-main", poolReadBack)
	c.Expect(tfCluster+"tf2-private/nodePools/tf2-main", map[string]any{"config.labels.pool": "main", "config.tags.0": "web",
		"config.machineType": "e2-medium", "networkConfig.enablePrivateNodes": true})
	c.expectGroups(pool, 2)
}
