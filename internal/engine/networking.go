package engine

// Where a cluster lives in its project's VPC: its network and subnetwork,
// its pod and Service ranges (VPC-native: secondary ranges of the
// subnetwork), its nodes' addresses; for a private cluster, its
// control-plane range, private endpoint, and the peering and firewall
// rules GKE makes; and who may reach its endpoints (master authorized
// networks).

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	compute "google.golang.org/api/compute/v1"
	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cidr"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

const (
	// googleServicesRange is the Google-managed range GKE gives the
	// Services of a cluster that names none.
	googleServicesRange = "34.118.224.0/20"
	// defaultPodBits is the size of the pod range GKE makes when none is
	// given (a /14).
	defaultPodBits = 14
	// Master authorized networks: at most this many ranges (more with a
	// private endpoint only).
	maxAuthorizedNetworks        = 50
	maxAuthorizedNetworksPrivate = 100
)

// clusterRanges is where GKE carves a cluster's pod range (and a Services
// range given only by size) when no range is named.
var clusterRanges = netip.MustParsePrefix("10.0.0.0/8")

// healthCheckRanges are the sources of Google Cloud load balancer health
// checks, which GKE lets reach the nodes.
var healthCheckRanges = []string{"35.191.0.0/16", "130.211.0.0/22"}

// placement is a new cluster's place in the VPC, resolved from the request
// before anything is allocated.
type placement struct {
	network, subnet, region string
	subnetRange             netip.Prefix
	pods, services          rangeChoice
	private, privateOnly    bool
	routes                  bool // routes-based: pods reached by a route per node
	controlPlaneRange       netip.Prefix
	secondaries             []*compute.SubnetworkSecondaryRange
	used                    []vpc.Range // what new ranges must avoid
}

// rangeChoice is how a cluster gets its pod or Services range: a named
// secondary range of the subnetwork, a given range, or a size for GKE to
// place (bits); field names the request field it came from.
type rangeChoice struct {
	secondary string
	prefix    netip.Prefix
	bits      int
	field     string
}

// managed says whether GKE adds the range to the subnetwork itself
// (gke-<cluster>-<kind>-<hash>): every range not named by the user.
func (c rangeChoice) managed() bool { return c.secondary == "" }

// place resolves and checks the cluster's network, subnetwork, ranges and
// private cluster settings. It changes nothing.
func (e *Engine) place(ctx context.Context, project string, loc Location, c *container.Cluster) (*placement, error) {
	pl := &placement{region: loc.Region}
	if err := e.placeSubnet(ctx, project, pl, c); err != nil {
		return nil, err
	}
	used, err := e.vpc.UsedRanges(ctx, project, pl.network)
	if err != nil {
		return nil, err
	}
	pl.used = used
	p := c.IpAllocationPolicy
	if p == nil {
		p = &container.IPAllocationPolicy{UseIpAliases: true}
	}
	if p.UseRoutes || !p.UseIpAliases {
		return pl, pl.placeRoutesBased(c, p)
	}
	if c.ClusterIpv4Cidr != "" {
		return nil, status.Invalid("cluster.clusterIpv4Cidr", "cluster.clusterIpv4Cidr is for routes-based clusters; a VPC-native cluster takes ipAllocationPolicy.clusterIpv4CidrBlock (--cluster-ipv4-cidr with --enable-ip-alias).")
	}
	if p.CreateSubnetwork {
		return nil, status.Invalid("cluster.ipAllocationPolicy.createSubnetwork", "Creating a subnetwork for the cluster is not supported by kubeyard yet: create it with `gcloud compute networks subnets create` and name it with --subnetwork.")
	}
	const policy = "cluster.ipAllocationPolicy."
	if pl.pods, err = pl.chooseRange(policy+"clusterSecondaryRangeName", p.ClusterSecondaryRangeName, policy+"clusterIpv4CidrBlock", firstOf(p.ClusterIpv4CidrBlock, p.ClusterIpv4Cidr)); err != nil {
		return nil, err
	}
	if pl.services, err = pl.chooseRange(policy+"servicesSecondaryRangeName", p.ServicesSecondaryRangeName, policy+"servicesIpv4CidrBlock", firstOf(p.ServicesIpv4CidrBlock, p.ServicesIpv4Cidr)); err != nil {
		return nil, err
	}
	if pl.pods.secondary == "" && !pl.pods.prefix.IsValid() && pl.pods.bits == 0 {
		pl.pods.bits = defaultPodBits
	}
	if pl.pods.prefix.IsValid() && pl.services.prefix.IsValid() && pl.pods.prefix.Overlaps(pl.services.prefix) {
		return nil, status.Invalid(pl.services.field, "The Services range %s overlaps the pod range %s.", pl.services.prefix, pl.pods.prefix)
	}
	bits := pl.pods.bits
	if pl.pods.prefix.IsValid() {
		bits = pl.pods.prefix.Bits()
	}
	if nodeBits := 32 - podRangeBits(c.DefaultMaxPodsConstraint); bits > nodeBits {
		return nil, status.Invalid(pl.pods.field, "The pod range (a /%d) is smaller than one node's pod range (a /%d for the maximum pods per node).", bits, nodeBits)
	}
	if m := c.DefaultMaxPodsConstraint; m != nil && (m.MaxPodsPerNode < 8 || m.MaxPodsPerNode > 256) {
		return nil, status.Invalid("cluster.defaultMaxPodsConstraint.maxPodsPerNode", "Invalid value %d: the maximum pods per node must be between 8 and 256.", m.MaxPodsPerNode)
	}
	if err := pl.placePrivate(c); err != nil {
		return nil, err
	}
	return pl, nil
}

// placeRoutesBased checks a routes-based cluster (--no-enable-ip-alias):
// its pods come from cluster.clusterIpv4Cidr (given, or a /14 GKE picks),
// reached through a route per node; its Services from the last /20 of it.
func (pl *placement) placeRoutesBased(c *container.Cluster, p *container.IPAllocationPolicy) error {
	const policy = "cluster.ipAllocationPolicy."
	for _, f := range []struct{ field, value string }{
		{"clusterSecondaryRangeName", p.ClusterSecondaryRangeName}, {"servicesSecondaryRangeName", p.ServicesSecondaryRangeName},
		{"clusterIpv4CidrBlock", firstOf(p.ClusterIpv4CidrBlock, p.ClusterIpv4Cidr)}, {"servicesIpv4CidrBlock", firstOf(p.ServicesIpv4CidrBlock, p.ServicesIpv4Cidr)},
	} {
		if f.value != "" {
			return status.Invalid(policy+f.field, "A routes-based cluster takes its pod range from cluster.clusterIpv4Cidr (--cluster-ipv4-cidr) and its Services range from the end of it; secondary ranges are for VPC-native clusters (--enable-ip-alias).")
		}
	}
	if pc := c.PrivateClusterConfig; (pc != nil && (pc.EnablePrivateNodes || pc.EnablePrivateEndpoint)) || (c.NetworkConfig != nil && c.NetworkConfig.DefaultEnablePrivateNodes) {
		return status.Invalid("cluster.privateClusterConfig.enablePrivateNodes", "A private cluster must be VPC-native (--enable-ip-alias).")
	}
	pl.routes = true
	var err error
	if pl.pods, err = pl.chooseRange("", "", "cluster.clusterIpv4Cidr", c.ClusterIpv4Cidr); err != nil {
		return err
	}
	if pl.pods.bits == 0 && !pl.pods.prefix.IsValid() {
		pl.pods.bits = defaultPodBits
	}
	if pl.pods.prefix.IsValid() && pl.pods.prefix.Bits() > 20 {
		return status.Invalid("cluster.clusterIpv4Cidr", "The pod range %s is too small: a routes-based cluster's Services take its last /20.", pl.pods.prefix)
	}
	return nil
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// placeSubnet resolves the network and subnetwork: as named, the network's
// own subnetwork in the region for an auto-mode network, or the default
// network's.
func (e *Engine) placeSubnet(ctx context.Context, project string, pl *placement, c *container.Cluster) error {
	network, subnet := vpc.ResourceName(c.Network), vpc.ResourceName(c.Subnetwork)
	if c.NetworkConfig != nil {
		network, subnet = firstOf(network, vpc.ResourceName(c.NetworkConfig.Network)), firstOf(subnet, vpc.ResourceName(c.NetworkConfig.Subnetwork))
	}
	if subnet == "" {
		if network == "" {
			network = "default"
		}
		n, err := e.vpc.GetNetwork(ctx, project, network)
		if status.Is(err, status.NotFound) {
			return status.Invalid("cluster.network", "Network %q does not exist in project %s.", network, project)
		} else if err != nil {
			return err
		}
		if !n.AutoCreateSubnetworks {
			return status.Invalid("cluster.subnetwork", "Network %q is a custom-mode network: name the cluster's subnetwork (--subnetwork).", network)
		}
		subnet = network
	}
	sub, err := e.vpc.GetSubnet(ctx, project, pl.region, subnet)
	if status.Is(err, status.NotFound) {
		return status.Invalid("cluster.subnetwork", "Subnetwork %q does not exist in region %s of project %s.", subnet, pl.region, project)
	} else if err != nil {
		return err
	}
	if network != "" && vpc.ResourceName(sub.Network) != network {
		return status.Invalid("cluster.subnetwork", "Subnetwork %q is in network %q, not %q.", subnet, vpc.ResourceName(sub.Network), network)
	}
	pl.network, pl.subnet = vpc.ResourceName(sub.Network), sub.Name
	pl.subnetRange, err = netip.ParsePrefix(sub.IpCidrRange)
	if err != nil {
		return err
	}
	pl.secondaries = sub.SecondaryIpRanges
	return nil
}

// chooseRange reads one of the cluster's ranges: a named secondary range
// of the subnetwork, or a range ("10.4.0.0/14") or size ("/14") for GKE to
// add, or nothing (zero rangeChoice).
func (pl *placement) chooseRange(nameField, name, blockField, block string) (rangeChoice, error) {
	switch {
	case name != "" && block != "":
		return rangeChoice{}, status.Invalid(blockField, "Name a secondary range or give a range, not both.")
	case name != "":
		i := slices.IndexFunc(pl.secondaries, func(r *compute.SubnetworkSecondaryRange) bool { return r.RangeName == name })
		if i < 0 {
			return rangeChoice{}, status.Invalid(nameField, "Subnetwork %q has no secondary range named %q.", pl.subnet, name)
		}
		p, err := netip.ParsePrefix(pl.secondaries[i].IpCidrRange)
		return rangeChoice{secondary: name, prefix: p, field: nameField}, err
	case block == "":
		return rangeChoice{field: blockField}, nil
	case strings.HasPrefix(block, "/"):
		var bits int
		if _, err := fmt.Sscanf(block, "/%d", &bits); err != nil || bits < 9 || bits > 27 || fmt.Sprintf("/%d", bits) != block {
			return rangeChoice{}, status.Invalid(blockField, "Invalid range size %q: a prefix length from /9 to /27, such as /14.", block)
		}
		return rangeChoice{bits: bits, field: blockField}, nil
	}
	p, err := cidr.Parse(blockField, block, 9, 27)
	if err != nil {
		return rangeChoice{}, err
	}
	// pl.used holds the subnetwork's own ranges too.
	if o, ok := vpc.FirstOverlap(p, pl.used); ok {
		return rangeChoice{}, status.Invalid(blockField, "The range %s overlaps the %s.", p, o.Owner)
	}
	return rangeChoice{prefix: p, field: blockField}, nil
}

// placePrivate checks the private cluster settings: private nodes need a
// control-plane /28 that overlaps nothing of the network or the cluster,
// and a private endpoint needs private nodes.
func (pl *placement) placePrivate(c *container.Cluster) error {
	pc := c.PrivateClusterConfig
	if pc == nil {
		pc = &container.PrivateClusterConfig{}
	}
	pl.private = pc.EnablePrivateNodes || (c.NetworkConfig != nil && c.NetworkConfig.DefaultEnablePrivateNodes)
	pl.privateOnly = pc.EnablePrivateEndpoint
	// The newer form of the same setting: no public endpoint.
	if public, given := publicEndpointGiven(c.ControlPlaneEndpointsConfig); given {
		if public && pl.privateOnly {
			return status.Invalid(publicEndpointField("cluster.controlPlaneEndpointsConfig"), "A public endpoint contradicts privateClusterConfig.enablePrivateEndpoint.")
		}
		pl.privateOnly = !public
	}
	const field = "cluster.privateClusterConfig.masterIpv4CidrBlock"
	switch {
	case pl.privateOnly && !pl.private:
		return status.Invalid("cluster.privateClusterConfig.enablePrivateEndpoint", "A private endpoint needs private nodes (--enable-private-nodes).")
	case !pl.private && pc.MasterIpv4CidrBlock != "":
		return status.Invalid(field, "A control-plane range is for private clusters: add --enable-private-nodes.")
	case !pl.private:
		return nil
	case pc.MasterIpv4CidrBlock == "":
		return status.Invalid(field, "A private cluster needs a /28 range for its control plane (--master-ipv4-cidr).")
	}
	p, err := cidr.Parse(field, pc.MasterIpv4CidrBlock, 28, 28)
	if err != nil {
		return err
	}
	if o, ok := vpc.FirstOverlap(p, pl.used); ok {
		return status.Invalid(field, "The control-plane range %s overlaps the %s.", p, o.Owner)
	}
	for _, r := range []rangeChoice{pl.pods, pl.services} {
		if r.prefix.IsValid() && r.prefix.Overlaps(p) {
			return status.Invalid(field, "The control-plane range %s overlaps the cluster's range %s.", p, r.prefix)
		}
	}
	pl.controlPlaneRange = p
	return nil
}

// allocateRanges gives the cluster its pod and Services ranges: named or
// given ones as they are (claimed, so that two creates cannot take the
// same), sized ones carved from 10.0.0.0/8 where nothing of the network
// is.
func (e *Engine) allocateRanges(a *allocator, r *ClusterRecord, pl *placement) error {
	kind := "pods/" + r.Project + "/" + pl.network // every cluster range of the network
	var avoid []netip.Prefix
	for _, u := range pl.used {
		avoid = append(avoid, u.Prefix)
	}
	if pl.controlPlaneRange.IsValid() {
		avoid = append(avoid, pl.controlPlaneRange)
	}
	choices := []*rangeChoice{&pl.pods, &pl.services}
	// A range is one cluster's, named or not.
	for _, c := range choices {
		if c.prefix.IsValid() {
			if !a.claim(kind, c.prefix) {
				return status.Invalid(c.field, "The range %s is another cluster's.", c.prefix)
			}
			avoid = append(avoid, c.prefix)
		}
	}
	for _, c := range choices {
		if c.bits == 0 {
			continue
		}
		p, err := a.blockAvoiding(kind, clusterRanges, c.bits, avoid)
		if err != nil {
			return status.Errorf(status.FailedPrecondition, "No free /%d for the cluster in network %s: %v", c.bits, pl.network, err)
		}
		c.prefix = p
		avoid = append(avoid, p)
	}
	hash := r.hash()
	c := r.Cluster
	c.Network, c.Subnetwork = pl.network, pl.subnet
	r.NodeRange = pl.subnetRange.String()
	if pl.routes {
		// The Services range is the pod range's last /20, as GKE makes it;
		// kube-controller-manager gives no node a pod range over it.
		pods := pl.pods.prefix
		last := netip.PrefixFrom(fromBE32(be32(pods.Addr())+uint32(1)<<(32-pods.Bits())-1<<12), 20)
		c.ClusterIpv4Cidr, c.ServicesIpv4Cidr = pods.String(), last.String()
		c.IpAllocationPolicy = &container.IPAllocationPolicy{UseRoutes: true, StackType: "IPV4",
			ClusterIpv4Cidr: c.ClusterIpv4Cidr, ServicesIpv4Cidr: c.ServicesIpv4Cidr}
		return nil
	}
	policy := &container.IPAllocationPolicy{UseIpAliases: true, StackType: "IPV4"}
	policy.ClusterSecondaryRangeName = pl.pods.secondary
	if pl.pods.managed() {
		policy.ClusterSecondaryRangeName = managedRangeName(r.Cluster.Name, "pods", hash)
		r.ManagedRanges = append(r.ManagedRanges, &compute.SubnetworkSecondaryRange{RangeName: policy.ClusterSecondaryRangeName, IpCidrRange: pl.pods.prefix.String()})
	}
	policy.ClusterIpv4Cidr, policy.ClusterIpv4CidrBlock = pl.pods.prefix.String(), pl.pods.prefix.String()
	services := googleServicesRange
	if pl.services.prefix.IsValid() {
		services = pl.services.prefix.String()
		policy.ServicesSecondaryRangeName = pl.services.secondary
		if pl.services.managed() {
			policy.ServicesSecondaryRangeName = managedRangeName(r.Cluster.Name, "services", hash)
			r.ManagedRanges = append(r.ManagedRanges, &compute.SubnetworkSecondaryRange{RangeName: policy.ServicesSecondaryRangeName, IpCidrRange: services})
		}
	}
	policy.ServicesIpv4Cidr, policy.ServicesIpv4CidrBlock = services, services
	c.IpAllocationPolicy = policy
	c.ClusterIpv4Cidr, c.ServicesIpv4Cidr = policy.ClusterIpv4Cidr, services
	return nil
}

func managedRangeName(cluster, kind, hash string) string {
	return fmt.Sprintf("gke-%s-%s-%s", truncate(cluster, 40), kind, hash)
}

// hash is the cluster's short hash, in the names GKE gives what it makes
// for the cluster.
func (r *ClusterRecord) hash() string { return r.UID[:8] }

// nodeTag is the network tag of the cluster's nodes, which its firewall
// rules target.
func (r *ClusterRecord) nodeTag() string {
	return fmt.Sprintf("gke-%s-%s-node", truncate(r.Cluster.Name, 40), r.hash())
}

// private says whether the cluster has private nodes.
func (r *ClusterRecord) private() bool {
	pc := r.Cluster.PrivateClusterConfig
	return pc != nil && pc.EnablePrivateNodes
}

// privateOnly says whether the cluster has no public endpoint.
func (r *ClusterRecord) privateOnly() bool {
	pc := r.Cluster.PrivateClusterConfig
	return pc != nil && pc.EnablePrivateEndpoint
}

// fillPrivate reports the private cluster settings.
func (r *ClusterRecord) fillPrivate(pl *placement) {
	c := r.Cluster
	if !pl.private {
		c.PrivateClusterConfig = nil
		return
	}
	c.PrivateClusterConfig = &container.PrivateClusterConfig{
		EnablePrivateNodes: true, EnablePrivateEndpoint: pl.privateOnly,
		MasterIpv4CidrBlock: pl.controlPlaneRange.String(),
		PeeringName:         r.managedPeering().Name,
	}
}

// reportEndpoints sets every field that gives the cluster's endpoints:
// endpoint is the private one when there is no public one.
func (r *ClusterRecord) reportEndpoints() {
	c := r.Cluster
	c.Endpoint = endpointOf(r)
	ip := &container.IPEndpointsConfig{Enabled: true, EnablePublicEndpoint: !r.privateOnly(), AuthorizedNetworksConfig: c.MasterAuthorizedNetworksConfig}
	if !r.privateOnly() {
		ip.PublicEndpoint = r.EndpointIP
	}
	if pc := c.PrivateClusterConfig; pc != nil {
		pc.PrivateEndpoint, ip.PrivateEndpoint = r.PrivateEndpointIP, r.PrivateEndpointIP
		pc.PublicEndpoint = ip.PublicEndpoint
	}
	c.ControlPlaneEndpointsConfig = &container.ControlPlaneEndpointsConfig{IpEndpointsConfig: ip}
}

// managedPeering is the Google-managed side of a private cluster: the
// network its control plane is in, peered with the cluster's network.
func (r *ClusterRecord) managedPeering() vpc.ManagedPeering {
	loc, _ := ParseLocation(r.Location)
	hash := r.hash()
	return vpc.ManagedPeering{
		Project: r.Project, Network: vpc.ResourceName(r.Cluster.Network),
		Name:          fmt.Sprintf("gke-%s-%s-peer", truncate(r.Cluster.Name, 40), hash),
		TenantProject: "gke-prod-" + loc.Region + "-" + hash[:4], TenantNetwork: "gke-n" + hash + "-net",
		Region: loc.Region, ControlPlaneRange: r.controlPlaneRange(),
	}
}

func (r *ClusterRecord) controlPlaneRange() string {
	if pc := r.Cluster.PrivateClusterConfig; pc != nil {
		return pc.MasterIpv4CidrBlock
	}
	return ""
}

// firewallRules are the rules GKE makes for a cluster: nodes reach each
// other (-vms) and pods reach nodes (-all); load balancer health checks
// reach the nodes (-hc); a private cluster's control plane reaches its
// nodes' kubelets and webhooks (-master).
func (r *ClusterRecord) firewallRules() []*compute.Firewall {
	c := r.Cluster
	prefix := fmt.Sprintf("gke-%s-%s", truncate(c.Name, 40), r.hash())
	rule := func(name, sources string, allowed ...*compute.FirewallAllowed) *compute.Firewall {
		return &compute.Firewall{Name: prefix + "-" + name, Network: c.Network, Direction: "INGRESS",
			SourceRanges: strings.Split(sources, ","), TargetTags: []string{r.nodeTag()}, Allowed: allowed,
			Description: "Made by kubeyard for cluster " + c.Name + "."}
	}
	allow := func(protocol string, ports ...string) *compute.FirewallAllowed {
		return &compute.FirewallAllowed{IPProtocol: protocol, Ports: ports}
	}
	rules := []*compute.Firewall{
		rule("vms", r.NodeRange, allow("icmp"), allow("tcp", "1-65535"), allow("udp", "1-65535")),
		rule("all", c.ClusterIpv4Cidr, allow("tcp"), allow("udp"), allow("icmp"), allow("esp"), allow("ah"), allow("sctp")),
		rule("hc", strings.Join(healthCheckRanges, ","), allow("tcp", "10256")),
	}
	if r.private() {
		rules = append(rules, rule("master", r.controlPlaneRange(), allow("tcp", "443", "10250")))
	}
	return rules
}

// ensureClusterNetwork makes what the cluster needs in its VPC: its
// secondary ranges, its firewall rules and, when private, the peering with
// its control plane's network. What exists already is left as it is.
func (e *Engine) ensureClusterNetwork(ctx context.Context, r *ClusterRecord) error {
	loc, _ := ParseLocation(r.Location)
	if len(r.ManagedRanges) > 0 {
		if err := e.vpc.AddSecondaryRanges(ctx, r.Project, loc.Region, r.Cluster.Subnetwork, r.ManagedRanges); err != nil {
			return fmt.Errorf("secondary ranges: %w", err)
		}
	}
	if r.private() {
		if err := e.vpc.EnsureManagedPeering(ctx, r.managedPeering()); err != nil {
			return err
		}
	}
	for _, fw := range r.firewallRules() {
		if _, err := e.vpc.InsertFirewall(ctx, r.Project, fw, nil); err != nil && !status.Is(err, status.AlreadyExists) {
			return fmt.Errorf("firewall rule %s: %w", fw.Name, err)
		}
	}
	return nil
}

// removeClusterNetwork undoes ensureClusterNetwork, and removes the routes
// to its nodes.
func (e *Engine) removeClusterNetwork(ctx context.Context, r *ClusterRecord) error {
	nodes := slices.Clone(r.Retiring)
	for _, pool := range r.Nodes {
		nodes = append(nodes, pool...)
	}
	if err := e.removeNodeRoutes(ctx, r, nodes...); err != nil {
		return err
	}
	for _, fw := range r.firewallRules() {
		if _, err := e.vpc.DeleteFirewall(ctx, r.Project, fw.Name); err != nil && !status.Is(err, status.NotFound) {
			return err
		}
	}
	if r.private() {
		if err := e.vpc.RemoveManagedPeering(ctx, r.managedPeering()); err != nil {
			return err
		}
	}
	loc, _ := ParseLocation(r.Location)
	var names []string
	for _, m := range r.ManagedRanges {
		names = append(names, m.RangeName)
	}
	return e.vpc.RemoveSecondaryRanges(ctx, r.Project, loc.Region, r.Cluster.Subnetwork, names)
}

// authorizedNetworks checks master authorized networks as a request gives
// them (field is where); privateOnly allows more ranges and refuses
// 0.0.0.0/0.
func authorizedNetworks(field string, cfg *container.MasterAuthorizedNetworksConfig, privateOnly bool) error {
	if cfg == nil {
		return nil
	}
	if !cfg.Enabled && len(cfg.CidrBlocks) > 0 {
		return status.Invalid(field+".enabled", "Authorized networks are given but not enabled (--enable-master-authorized-networks).")
	}
	limit := maxAuthorizedNetworks
	if privateOnly {
		limit = maxAuthorizedNetworksPrivate
	}
	if len(cfg.CidrBlocks) > limit {
		return status.Invalid(field+".cidrBlocks", "%d authorized networks is too many: at most %d.", len(cfg.CidrBlocks), limit)
	}
	for i, b := range cfg.CidrBlocks {
		f := fmt.Sprintf("%s.cidrBlocks[%d].cidrBlock", field, i)
		p, err := cidr.Any(f, b.CidrBlock)
		switch {
		case err != nil:
			return err
		case privateOnly && p.Bits() == 0:
			return status.Invalid(f, "0.0.0.0/0 cannot be an authorized network of a cluster with a private endpoint only.")
		}
	}
	return nil
}

// publicEndpointGiven is a request's ipEndpointsConfig.enablePublicEndpoint,
// and whether it was given (the API layer marks a false one in
// ForceSendFields, as Google's client types do).
func publicEndpointGiven(cfg *container.ControlPlaneEndpointsConfig) (public, given bool) {
	if cfg == nil || cfg.IpEndpointsConfig == nil {
		return false, false
	}
	ip := cfg.IpEndpointsConfig
	return ip.EnablePublicEndpoint, ip.EnablePublicEndpoint || slices.Contains(ip.ForceSendFields, "EnablePublicEndpoint")
}

func publicEndpointField(prefix string) string {
	return prefix + ".ipEndpointsConfig.enablePublicEndpoint"
}

// requestedAuthorizedNetworks is the authorized networks of a request, in
// either form gcloud may send (endpoints: controlPlaneEndpointsConfig, or
// the older masterAuthorizedNetworksConfig), with the field to name in
// errors: endpointsField or legacyField.
func requestedAuthorizedNetworks(endpointsField string, endpoints *container.ControlPlaneEndpointsConfig, legacyField string, legacy *container.MasterAuthorizedNetworksConfig) (*container.MasterAuthorizedNetworksConfig, string) {
	if endpoints != nil && endpoints.IpEndpointsConfig != nil && endpoints.IpEndpointsConfig.AuthorizedNetworksConfig != nil {
		return endpoints.IpEndpointsConfig.AuthorizedNetworksConfig, endpointsField + ".ipEndpointsConfig.authorizedNetworksConfig"
	}
	return legacy, legacyField
}

// authorizedPrefixes are the ranges the cluster's endpoints admit, or nil
// when authorized networks are off (every source).
func (r *ClusterRecord) authorizedPrefixes() []netip.Prefix {
	cfg := r.Cluster.MasterAuthorizedNetworksConfig
	if cfg == nil || !cfg.Enabled {
		return nil
	}
	out := []netip.Prefix{}
	for _, b := range cfg.CidrBlocks {
		if p, err := netip.ParsePrefix(b.CidrBlock); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// actionUpdateAuthorizedNetworks is the UPDATE_CLUSTER action that changes
// master authorized networks.
const actionUpdateAuthorizedNetworks = "update-authorized-networks"

// runUpdateAuthorizedNetworks is done once every endpoint enforces the
// authorized networks the record says.
func (e *Engine) runUpdateAuthorizedNetworks(ctx context.Context, op *operations.Record) error {
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	e.ops.Stage(ctx, op, "Applying the authorized networks on every endpoint")
	return e.runtime.EnsureAccess(ctx, e.spec(r))
}

// updateAuthorizedNetworks changes who may reach the cluster's endpoints.
// The record says the new list at once; the operation is done once every
// endpoint enforces it.
func (e *Engine) updateAuthorizedNetworks(ctx context.Context, r *ClusterRecord, rev int64, u *container.ClusterUpdate) (*container.Operation, error) {
	cfg, field := requestedAuthorizedNetworks("update.desiredControlPlaneEndpointsConfig", u.DesiredControlPlaneEndpointsConfig, "update.desiredMasterAuthorizedNetworksConfig", u.DesiredMasterAuthorizedNetworksConfig)
	if cfg == nil {
		return nil, status.Invalid("update.desiredControlPlaneEndpointsConfig", "Only the authorized networks of the control-plane endpoints can be changed.")
	}
	if err := authorizedNetworks(field, cfg, r.privateOnly()); err != nil {
		return nil, err
	}
	if public, given := publicEndpointGiven(u.DesiredControlPlaneEndpointsConfig); given && public == r.privateOnly() {
		return nil, status.Invalid(publicEndpointField("update.desiredControlPlaneEndpointsConfig"), "Adding or removing the public endpoint of a cluster is not supported by kubeyard yet (cluster %q has %s).", r.Cluster.Name, map[bool]string{true: "a private endpoint only", false: "a public endpoint"}[r.privateOnly()])
	}
	if r.Operation != "" {
		return nil, busyError(r.Project, r.Location, r.Operation)
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", r.Cluster.Name, r.Cluster.Status)
	}
	r.Cluster.MasterAuthorizedNetworksConfig = cfg
	r.reportEndpoints()
	op := e.newOperation(r, OpUpdateCluster, "clusters/"+r.Cluster.Name)
	op.Action = actionUpdateAuthorizedNetworks
	return e.startOperation(ctx, r, rev, op)
}

// routesBased says whether the cluster reaches its pods through a route
// per node rather than alias ranges.
func (r *ClusterRecord) routesBased() bool {
	return r.Cluster.IpAllocationPolicy != nil && r.Cluster.IpAllocationPolicy.UseRoutes
}

// nodeRouteName is the name of the route to a node's pod range.
func (r *ClusterRecord) nodeRouteName(node string) string {
	parts := strings.Split(node, "-")
	suffix := strings.Join(parts[max(0, len(parts)-2):], "-")
	return fmt.Sprintf("gke-%s-%s-%s", truncate(r.Cluster.Name, 20), r.hash(), suffix)
}

// addNodeRoutes gives each node of a routes-based cluster's pool the route
// to its pod range (which kube-controller-manager assigns once the Node
// registers), to the node's internal address.
func (e *Engine) addNodeRoutes(ctx context.Context, r *ClusterRecord, pool string) error {
	if !r.routesBased() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, n := range r.Nodes[pool] {
		cidr, err := e.runtime.PodCIDR(ctx, e.spec(r), n.Name)
		if err != nil {
			return err
		}
		route := &compute.Route{Name: r.nodeRouteName(n.Name), Network: vpc.ResourceName(r.Cluster.Network), DestRange: cidr,
			NextHopIp: n.InternalIP, Priority: 1000, Description: "k8s-node-route"}
		if _, err := e.vpc.InsertRoute(ctx, r.Project, route); err != nil && !status.Is(err, status.AlreadyExists) {
			return fmt.Errorf("route to node %s: %w", n.Name, err)
		}
	}
	return nil
}

// removeNodeRoutes removes the routes to nodes that are gone.
func (e *Engine) removeNodeRoutes(ctx context.Context, r *ClusterRecord, nodes ...NodeRecord) error {
	if !r.routesBased() {
		return nil
	}
	for _, n := range nodes {
		if _, err := e.vpc.DeleteRoute(ctx, r.Project, r.nodeRouteName(n.Name)); err != nil && !status.Is(err, status.NotFound) {
			return err
		}
	}
	return nil
}
