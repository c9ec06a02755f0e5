package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

var nameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// MaxNodesPerPool is GKE's limit of nodes per node pool and zone.
const MaxNodesPerPool = 1000

func validateName(field, kind, name string) error {
	if len(name) == 0 || len(name) > 40 || !nameRE.MatchString(name) {
		return status.Invalid(field, "Invalid value for field %q: %q. %s names must be 1 to 40 characters: lowercase letters, digits and hyphens, starting with a letter and ending with a letter or digit.", field, name, kind)
	}
	return nil
}

func parseLocation(location string) (Location, error) {
	loc, ok := ParseLocation(location)
	if !ok {
		return Location{}, status.Invalid("parent", "Location %q is not a known zone or region.", location)
	}
	return loc, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// labelFingerprint is the fingerprint of a set of labels, checked by
// setResourceLabels to catch lost updates.
func labelFingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

func validVersion(v string) bool {
	return slices.Contains([]string{"", "-", "latest", "1", "1.37", KubernetesVersion, Version}, v)
}

// CreateCluster validates c, stores it as PROVISIONING and starts the
// CREATE_CLUSTER operation that brings it up.
func (e *Engine) CreateCluster(ctx context.Context, project, location string, c *container.Cluster) (*container.Operation, error) {
	loc, err := parseLocation(location)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, status.Invalid("cluster", "A cluster is required.")
	}
	if err := validateName("cluster.name", "Cluster", c.Name); err != nil {
		return nil, err
	}
	if len(c.NodePools) > 0 && (c.InitialNodeCount != 0 || c.NodeConfig != nil) {
		return nil, status.Invalid("cluster.nodePools", "Cannot specify both cluster.nodePools and cluster.initialNodeCount or cluster.nodeConfig.")
	}
	if len(c.NodePools) == 0 {
		if c.InitialNodeCount <= 0 {
			return nil, status.Invalid("cluster.initialNodeCount", "A cluster needs at least one node pool or an initial node count above zero.")
		}
		c.NodePools = []*container.NodePool{{Name: "default-pool", InitialNodeCount: c.InitialNodeCount, Config: c.NodeConfig}}
	}
	// Before the version and the pools: what GKE says of these is about
	// intra-node visibility.
	if intraNodeVisibility(c) {
		if err := checkIntraNodeVisibility(intraNodeField, c.InitialClusterVersion, c.NodePools); err != nil {
			return nil, err
		}
	}
	logging, err := requestedLogging(c)
	if err != nil {
		return nil, err
	}
	if !validVersion(c.InitialClusterVersion) {
		return nil, status.Invalid("cluster.initialClusterVersion", "Version %q is not supported; this engine runs %s.", c.InitialClusterVersion, Version)
	}
	if len(c.Locations) > 0 {
		for i, z := range c.Locations {
			if !slices.Contains(loc.Zones(), z) && !(loc.Regional() && strings.HasPrefix(z, loc.Region+"-")) {
				return nil, status.Invalid(fmt.Sprintf("cluster.locations[%d]", i), "Zone %q is not in location %q.", z, location)
			}
		}
	}
	if c.ResourceLabels, err = etcdTopology(c.ResourceLabels, loc.Regional()); err != nil {
		return nil, err
	}
	if err := validatePolicy("cluster.maintenancePolicy", c.MaintenancePolicy); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, p := range c.NodePools {
		if err := validatePool(fmt.Sprintf("cluster.nodePools[%d]", i), p); err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, status.Invalid(fmt.Sprintf("cluster.nodePools[%d].name", i), "Node pool %q is given twice.", p.Name)
		}
		seen[p.Name] = true
	}
	if _, _, err := e.getCluster(ctx, project, location, c.Name); err == nil {
		return nil, status.Errorf(status.AlreadyExists, "Already exists: projects/%s/locations/%s/clusters/%s.", project, location, c.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	pl, err := e.place(ctx, project, loc, c)
	if err != nil {
		return nil, err
	}
	authorized, field := requestedAuthorizedNetworks("cluster.controlPlaneEndpointsConfig", c.ControlPlaneEndpointsConfig, "cluster.masterAuthorizedNetworksConfig", c.MasterAuthorizedNetworksConfig)
	if err := authorizedNetworks(field, authorized, pl.privateOnly); err != nil {
		return nil, err
	}
	c.MasterAuthorizedNetworksConfig = authorized

	r := &ClusterRecord{Cluster: c, Project: project, Location: location, UID: randomHex(16), Nodes: map[string][]NodeRecord{}, Creator: e.cfg.Identity.User}
	alloc, err := e.newAllocator(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.allocate(alloc, r, loc, pl); err != nil {
		return nil, err
	}
	var shared []store.Write
	if c.ResourceLabels[EtcdTopologyLabel] == topologyShared {
		if r.SharedEtcdIP, shared, err = e.sharedEtcdAddress(ctx, alloc); err != nil {
			return nil, err
		}
	}
	e.fillCluster(r, loc, pl)
	setLogging(r.Cluster, logging)
	for _, p := range c.NodePools {
		if err := e.addNodes(alloc, r, p, p.InitialNodeCount); err != nil {
			return nil, err
		}
	}
	r.Allocations = alloc.got
	op := e.newOperation(r, OpCreateCluster, "clusters/"+c.Name)
	return e.startOperation(ctx, r, store.Absent, op, shared...)
}

// allocate gives r its endpoints, replica addresses and ranges.
func (e *Engine) allocate(a *allocator, r *ClusterRecord, loc Location, pl *placement) error {
	endpoint := func() (string, error) {
		ep, err := a.ip("endpoint", e.cfg.EndpointPool, 2, e.cfg.EndpointPort)
		if err != nil {
			return "", status.Errorf(status.FailedPrecondition, "%v", err)
		}
		return ep.String(), nil
	}
	var err error
	if pl.private {
		if r.PrivateEndpointIP, err = endpoint(); err != nil {
			return err
		}
	}
	r.EndpointIP, r.EndpointPort = r.PrivateEndpointIP, e.cfg.EndpointPort
	if !pl.privateOnly {
		if r.EndpointIP, err = endpoint(); err != nil {
			return err
		}
	}
	for range loc.Zones() {
		h, err := a.ip("host", e.cfg.HostPool, 2, controlplane.APIServerPort, controlplane.EtcdClientPort)
		if err != nil {
			return status.Errorf(status.FailedPrecondition, "%v", err)
		}
		r.HostIPs = append(r.HostIPs, h.String())
	}
	if r.Cluster.ResourceLabels[EtcdTopologyLabel] == topologyExternal {
		for range externalEtcdMembers {
			h, err := a.ip("host", e.cfg.HostPool, 2, controlplane.EtcdClientPort, controlplane.EtcdPeerPort)
			if err != nil {
				return status.Errorf(status.FailedPrecondition, "%v", err)
			}
			r.EtcdHostIPs = append(r.EtcdHostIPs, h.String())
		}
	}
	if err := e.allocateRanges(a, r, pl); err != nil {
		return err
	}
	subnet, err := r.nodeRange()
	if err != nil {
		return err
	}
	ip, err := a.ip(r.nodeIPKind(), subnet, 2)
	if err != nil {
		return status.Errorf(status.FailedPrecondition, "Subnetwork %s has no free address for the cluster's internal endpoint: %v", r.Cluster.Subnetwork, err)
	}
	r.InternalEndpointIP = ip.String()
	return nil
}

// fillCluster sets everything GKE reports about a new cluster.
func (e *Engine) fillCluster(r *ClusterRecord, loc Location, pl *placement) {
	c := r.Cluster
	now := e.cfg.Clock.Now().UTC().Format(time.RFC3339)
	c.Id = r.UID
	c.Location = loc.Name
	if !loc.Regional() {
		c.Zone = loc.Name
	}
	if len(c.Locations) == 0 {
		c.Locations = loc.Zones()
	}
	c.SelfLink = e.locationURL(r.Project, r.Location) + "/clusters/" + c.Name
	c.CreateTime = now
	c.Status = "PROVISIONING"
	c.InitialClusterVersion = Version
	c.CurrentMasterVersion = Version
	c.CurrentNodeVersion = Version
	c.NetworkConfig = &container.NetworkConfig{
		Network:                   "projects/" + r.Project + "/global/networks/" + c.Network,
		Subnetwork:                "projects/" + r.Project + "/regions/" + loc.Region + "/subnetworks/" + c.Subnetwork,
		DefaultEnablePrivateNodes: pl.private,
		EnableIntraNodeVisibility: intraNodeVisibility(c),
	}
	r.fillPrivate(pl)
	r.reportEndpoints()
	c.NodeIpv4CidrSize = int64(32 - podRangeBits(c.DefaultMaxPodsConstraint))
	c.LabelFingerprint = labelFingerprint(c.ResourceLabels)
	// initialNodeCount stays as the request gave it (GKE keeps returning
	// it once the default pool is gone); nodeConfig is the first pool's.
	c.NodeConfig = nil
	for _, p := range c.NodePools {
		e.fillPool(r, loc, p)
	}
	if len(c.NodePools) > 0 {
		c.NodeConfig = c.NodePools[0].Config
	}
	c.MaintenancePolicy = reportedPolicy(c.MaintenancePolicy)
	reportDefaults(c)
	c.Etag = randomHex(4)
}

// reportDefaults sets the fields GKE always returns, at the values that
// say what kubeyard does: clients (Terraform's provider among them) read
// them without checking that they are there.
func reportDefaults(c *container.Cluster) {
	// Logs go to the engine's Cloud Logging (setLogging); metrics nowhere:
	// say so rather than pretend.
	c.MonitoringService = "none"
	c.MonitoringConfig = &container.MonitoringConfig{ComponentConfig: &container.MonitoringComponentConfig{}}
	c.LegacyAbac = &container.LegacyAbac{}
	c.Autopilot = &container.Autopilot{}
	c.Autoscaling = &container.ClusterAutoscaling{AutoscalingProfile: "BALANCED"}
	c.BinaryAuthorization = &container.BinaryAuthorization{}
	c.NotificationConfig = &container.NotificationConfig{Pubsub: &container.PubSub{}}
	c.NetworkPolicy = &container.NetworkPolicy{Provider: "PROVIDER_UNSPECIFIED"}
	// Network policy is not enforced, nor is there an L7 load balancer.
	c.AddonsConfig = &container.AddonsConfig{
		NetworkPolicyConfig: &container.NetworkPolicyConfig{Disabled: true},
		HttpLoadBalancing:   &container.HttpLoadBalancing{Disabled: true},
	}
	c.ReleaseChannel = &container.ReleaseChannel{Channel: "REGULAR"}
	// Shielded in what matters to the cluster: a node's identity comes
	// only from the engine (README, "Shielded nodes").
	c.ShieldedNodes = &container.ShieldedNodes{Enabled: true}
	c.DatabaseEncryption = &container.DatabaseEncryption{State: "DECRYPTED", CurrentState: "CURRENT_STATE_DECRYPTED"}
	c.EnterpriseConfig = &container.EnterpriseConfig{ClusterTier: "STANDARD"}
	c.NodePoolDefaults = &container.NodePoolDefaults{NodeConfigDefaults: &container.NodeConfigDefaults{
		LoggingConfig: &container.NodePoolLoggingConfig{VariantConfig: &container.LoggingVariantConfig{Variant: "DEFAULT"}}}}
	if c.MasterAuthorizedNetworksConfig == nil {
		c.MasterAuthorizedNetworksConfig = &container.MasterAuthorizedNetworksConfig{}
	}
	if c.DefaultMaxPodsConstraint == nil {
		c.DefaultMaxPodsConstraint = &container.MaxPodsConstraint{MaxPodsPerNode: 110}
	}
	nc := c.NetworkConfig
	// kube-proxy's dataplane, not GKE Dataplane V2.
	nc.DatapathProvider = "LEGACY_DATAPATH"
	nc.DefaultSnatStatus = &container.DefaultSnatStatus{}
	nc.ServiceExternalIpsConfig = &container.ServiceExternalIPsConfig{}
}

// caCertificate is the base64 of the cluster CA in PEM, as masterAuth
// gives it.
func (e *Engine) caCertificate(s cluster.Spec) string {
	pem, err := e.runtime.CACertificate(s)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(pem)
}

func (e *Engine) runCreateCluster(ctx context.Context, op *operations.Record) error {
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	s := e.spec(r)
	e.ops.Stage(ctx, op, "Configuring the VPC network "+r.Cluster.Network)
	if err := e.ensureClusterNetwork(ctx, r); err != nil {
		return err
	}
	e.ops.Stage(ctx, op, "Starting the control plane")
	if err := e.runtime.EnsureControlPlane(ctx, s); err != nil {
		return err
	}
	if r, err = e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
		r.Cluster.MasterAuth = &container.MasterAuth{ClusterCaCertificate: e.caCertificate(s)}
		return nil
	}); err != nil {
		return err
	}
	for _, p := range r.Cluster.NodePools {
		e.ops.Stage(ctx, op, "Creating node pool "+p.Name)
		begin := time.Now()
		if r, err = e.ensurePoolNodes(ctx, r, p.Name); err != nil {
			return err
		}
		e.cfg.Logger.Info("node pool ready", "cluster", r.Cluster.Name, "pool", p.Name, "took", time.Since(begin).Round(time.Millisecond))
	}
	if intraNodeVisibility(r.Cluster) {
		if err := e.applyIntraNodeVisibility(ctx, op, r); err != nil {
			return err
		}
	}
	_, err = e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
		r.Cluster.Status = "RUNNING"
		r.Cluster.StatusMessage = ""
		for _, p := range r.Cluster.NodePools {
			p.Status = "RUNNING"
		}
		r.Cluster.CurrentNodeCount = countNodes(r)
		return nil
	})
	return err
}

func countNodes(r *ClusterRecord) int64 {
	n := 0
	for _, nodes := range r.Nodes {
		n += len(nodes)
	}
	return int64(n)
}

// GetCluster returns one cluster.
func (e *Engine) GetCluster(ctx context.Context, project, location, name string) (*container.Cluster, error) {
	r, _, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	return r.Cluster, nil
}

// ListClusters lists the clusters in a location ("-" for every location).
func (e *Engine) ListClusters(ctx context.Context, project, location string) ([]*container.Cluster, error) {
	prefix := "clusters/" + project + "/"
	if location != "-" {
		if _, err := parseLocation(location); err != nil {
			return nil, err
		}
		prefix += location + "/"
	}
	records, err := e.listClusters(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]*container.Cluster, 0, len(records))
	for _, r := range records {
		out = append(out, r.Cluster)
	}
	return out, nil
}

// DeleteCluster starts the DELETE_CLUSTER operation.
func (e *Engine) DeleteCluster(ctx context.Context, project, location, name string) (*container.Operation, error) {
	r, rev, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	r.Cluster.Status = "STOPPING"
	return e.startOperation(ctx, r, rev, e.newOperation(r, OpDeleteCluster, "clusters/"+name))
}

func (e *Engine) runDeleteCluster(ctx context.Context, op *operations.Record) error {
	r, rev, err := e.getCluster(ctx, op.Project, op.Location, op.ClusterName)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	e.ops.Stage(ctx, op, "Stopping the cluster")
	if err := e.runtime.Destroy(e.spec(r)); err != nil {
		return err
	}
	e.ops.Stage(ctx, op, "Removing the cluster's VPC resources")
	if err := e.removeClusterNetwork(ctx, r); err != nil {
		return err
	}
	return e.store.Commit(ctx, r.deletion(rev)...)
}

// SetLabels replaces the cluster's resource labels; fingerprint, when
// given, must match the current labels.
func (e *Engine) SetLabels(ctx context.Context, project, location, name string, labels map[string]string, fingerprint string) (*container.Operation, error) {
	for k, v := range labels {
		if !labelKeyRE.MatchString(k) || !labelValueRE.MatchString(v) {
			return nil, status.Invalid("resourceLabels", "Invalid label %q=%q: keys and values are up to 63 lowercase letters, digits, '_' and '-', keys starting with a letter.", k, v)
		}
	}
	r, rev, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if fingerprint != "" && fingerprint != r.Cluster.LabelFingerprint {
		return nil, status.Errorf(status.FailedPrecondition, "Labels could not be set due to fingerprint mismatch (expected %s, got %s).", r.Cluster.LabelFingerprint, fingerprint)
	}
	if labels, err = keepTopology(r.Cluster.ResourceLabels, labels); err != nil {
		return nil, err
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	r.Cluster.ResourceLabels = labels
	r.Cluster.LabelFingerprint = labelFingerprint(labels)
	return e.startOperation(ctx, r, rev, e.newOperation(r, OpSetLabels, "clusters/"+name))
}

var (
	labelKeyRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	labelValueRE = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
)

// UpdateCluster applies a ClusterUpdate. The only change honoured so far is
// desiredMasterVersion to the version running: as in GKE, a control-plane
// "upgrade" to the same version recreates the control plane, one replica at
// a time (UPGRADE_MASTER). The API layer rejects every other field by name.
func (e *Engine) UpdateCluster(ctx context.Context, project, location, name string, u *container.ClusterUpdate) (*container.Operation, error) {
	r, rev, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	networks := u != nil && (u.DesiredControlPlaneEndpointsConfig != nil || u.DesiredMasterAuthorizedNetworksConfig != nil)
	visibility := u != nil && u.DesiredIntraNodeVisibilityConfig != nil
	logging := u != nil && (u.DesiredLoggingConfig != nil || u.DesiredLoggingService != "")
	switch {
	case logging && (visibility || networks || u.DesiredMasterVersion != "" || u.DesiredNodeVersion != ""):
		return nil, status.Invalid("update.desiredLoggingConfig", "Logging changes in an update of its own.")
	case logging:
		return e.updateLogging(ctx, r, rev, u)
	case visibility && (networks || u.DesiredMasterVersion != "" || u.DesiredNodeVersion != ""):
		return nil, status.Invalid("update.desiredIntraNodeVisibilityConfig", "Intra-node visibility changes in an update of its own.")
	case visibility:
		return e.updateIntraNodeVisibility(ctx, r, rev, u.DesiredIntraNodeVisibilityConfig)
	case networks && (u.DesiredMasterVersion != "" || u.DesiredNodeVersion != ""):
		return nil, status.Invalid("update.desiredMasterVersion", "Authorized networks and versions change in separate updates.")
	case networks:
		return e.updateAuthorizedNetworks(ctx, r, rev, u)
	case u == nil || (u.DesiredMasterVersion == "" && u.DesiredNodeVersion == ""):
		return nil, status.Invalid("update", "The update changes nothing.")
	case u.DesiredMasterVersion != "" && u.DesiredNodeVersion != "":
		return nil, status.Invalid("update.desiredNodeVersion", "The control plane and the nodes are upgraded one after the other, not in one update.")
	case u.DesiredNodeVersion != "":
		return e.upgradeNodes(ctx, r, rev, u)
	}
	if !validVersion(u.DesiredMasterVersion) {
		return nil, status.Invalid("update.desiredMasterVersion", "Version %q is not supported; this engine runs %s.", u.DesiredMasterVersion, Version)
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", name, r.Cluster.Status)
	}
	// Recreating replicas one at a time keeps quorum only if every other
	// replica is healthy: refuse up front rather than half way.
	if err := e.runtime.CheckHealthy(ctx, e.spec(r)); err != nil {
		return nil, quorumError(name, err)
	}
	r.Cluster.Status = "RECONCILING"
	return e.startOperation(ctx, r, rev, e.newOperation(r, OpUpgradeMaster, "clusters/"+name))
}

// upgradeNodes is a node "upgrade" to the version running: the pool's
// nodes are recreated (UPGRADE_NODES), maintenance policy or not. It is how
// a user forces the recreation an IP rotation needs.
func (e *Engine) upgradeNodes(ctx context.Context, r *ClusterRecord, rev int64, u *container.ClusterUpdate) (*container.Operation, error) {
	if !validVersion(u.DesiredNodeVersion) {
		return nil, status.Invalid("update.desiredNodeVersion", "Version %q is not supported; this engine runs %s.", u.DesiredNodeVersion, Version)
	}
	pool := u.DesiredNodePoolId
	if pool == "" && len(r.Cluster.NodePools) == 1 {
		pool = r.Cluster.NodePools[0].Name
	}
	if r.pool(pool) == nil {
		return nil, status.Invalid("update.desiredNodePoolId", "Node pool %q is not in cluster %q; name one with --node-pool.", pool, r.Cluster.Name)
	}
	if r.Operation != "" {
		return nil, busyError(r.Project, r.Location, r.Operation)
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", r.Cluster.Name, r.Cluster.Status)
	}
	var replace []string
	for _, n := range r.Nodes[pool] {
		replace = append(replace, n.Name)
	}
	return e.startOperation(ctx, r, rev, e.recreation(r, pool, replace))
}

func quorumError(name string, err error) error {
	if errors.Is(err, cluster.ErrWouldLoseQuorum) {
		return status.Errorf(status.FailedPrecondition, "Cluster %q: %v. Wait until every replica is healthy.", name, err)
	}
	return err
}

// runUpgradeMaster recreates the control-plane replicas one after another.
func (e *Engine) runUpgradeMaster(ctx context.Context, op *operations.Record) (err error) {
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	defer e.backToRunning(op, &err)
	return e.restartControlPlane(ctx, op, r)
}

// backToRunning marks the cluster RUNNING again once the operation ends:
// success or not, the cluster serves on with what it has.
func (e *Engine) backToRunning(op *operations.Record, err *error) {
	if _, uerr := e.updateCluster(context.Background(), op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
		r.Cluster.Status = "RUNNING"
		return nil
	}); *err == nil {
		*err = uerr
	}
}

// restartControlPlane recreates the control-plane replicas one after
// another; op.Step counts those done, so a resumed operation goes on from
// there.
func (e *Engine) restartControlPlane(ctx context.Context, op *operations.Record, r *ClusterRecord) error {
	s := e.spec(r)
	for op.Step < len(s.Hosts) {
		e.ops.Stage(ctx, op, fmt.Sprintf("Recreating control-plane replica %d of %d", op.Step+1, len(s.Hosts)))
		if err := e.runtime.ReplaceHost(ctx, s, s.Hosts[op.Step]); err != nil {
			return quorumError(r.Cluster.Name, err)
		}
		if err := e.ops.Step(ctx, op); err != nil {
			return err
		}
	}
	return nil
}

// ServerConfig is getServerConfig: the one version this engine runs.
func (e *Engine) ServerConfig(location string) (*container.ServerConfig, error) {
	if _, err := parseLocation(location); err != nil {
		return nil, err
	}
	return &container.ServerConfig{
		DefaultClusterVersion: Version,
		DefaultImageType:      defaultImageType,
		ValidImageTypes:       []string{defaultImageType},
		ValidMasterVersions:   []string{Version},
		ValidNodeVersions:     []string{Version},
		Channels: []*container.ReleaseChannelConfig{
			{Channel: "REGULAR", DefaultVersion: Version, ValidVersions: []string{Version}},
		},
	}, nil
}
