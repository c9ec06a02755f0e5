package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// machineTypes are the machine types a node can be, with the capacity its
// Node reports (CPU, memory).
var machineTypes = map[string][2]string{
	"e2-micro": {"2", "1Gi"}, "e2-small": {"2", "2Gi"}, "e2-medium": {"2", "4Gi"},
	"e2-standard-2": {"2", "8Gi"}, "e2-standard-4": {"4", "16Gi"}, "e2-standard-8": {"8", "32Gi"},
	"n1-standard-1": {"1", "3840Mi"}, "n1-standard-2": {"2", "7680Mi"}, "n1-standard-4": {"4", "15Gi"},
	"n2-standard-2": {"2", "8Gi"}, "n2-standard-4": {"4", "16Gi"}, "n2-standard-8": {"8", "32Gi"},
}

const defaultMachineType = "e2-medium"

// KubeletPort is the port of a node's kubelet endpoint.
const KubeletPort = 10250

func validatePool(field string, p *container.NodePool) error {
	if p == nil {
		return status.Invalid(field, "A node pool is required.")
	}
	if err := validateName(field+".name", "Node pool", p.Name); err != nil {
		return err
	}
	if p.InitialNodeCount < 0 || p.InitialNodeCount > MaxNodesPerPool {
		return status.Invalid(field+".initialNodeCount", "Invalid value %d: the node count must be between 0 and %d.", p.InitialNodeCount, MaxNodesPerPool)
	}
	if p.Config != nil && p.Config.MachineType != "" {
		if _, ok := machineTypes[p.Config.MachineType]; !ok {
			return status.Invalid(field+".config.machineType", "Machine type %q is not supported.", p.Config.MachineType)
		}
	}
	// Nodes run Linux containers with runc, as COS_CONTAINERD nodes do.
	if p.Config != nil && p.Config.ImageType != "" && p.Config.ImageType != defaultImageType {
		return status.Invalid(field+".config.imageType", "Image type %q is not supported; kubeyard nodes are %s.", p.Config.ImageType, defaultImageType)
	}
	if p.Version != "" && !validVersion(p.Version) {
		return status.Invalid(field+".version", "Version %q is not supported; this engine runs %s.", p.Version, Version)
	}
	return nil
}

const defaultImageType = "COS_CONTAINERD"

// fillPool sets everything GKE reports about a new node pool.
func (e *Engine) fillPool(r *ClusterRecord, loc Location, p *container.NodePool) {
	if p.Config == nil {
		p.Config = &container.NodeConfig{}
	}
	cfg := p.Config
	if cfg.MachineType == "" {
		cfg.MachineType = defaultMachineType
	}
	if cfg.DiskSizeGb == 0 {
		cfg.DiskSizeGb = 100
	}
	if cfg.DiskType == "" {
		cfg.DiskType = "pd-balanced"
	}
	if cfg.ImageType == "" {
		cfg.ImageType = defaultImageType
	}
	if cfg.ServiceAccount == "" {
		cfg.ServiceAccount = "default"
	}
	cfg.LoggingConfig = &container.NodePoolLoggingConfig{VariantConfig: &container.LoggingVariantConfig{Variant: "DEFAULT"}}
	p.Version = Version
	p.Status = "PROVISIONING"
	p.SelfLink = r.Cluster.SelfLink + "/nodePools/" + p.Name
	if len(p.Locations) == 0 {
		p.Locations = r.Cluster.Locations
	}
	p.MaxPodsConstraint = &container.MaxPodsConstraint{MaxPodsPerNode: 110}
	if m := r.Cluster.DefaultMaxPodsConstraint; m != nil && m.MaxPodsPerNode > 0 {
		p.MaxPodsConstraint.MaxPodsPerNode = m.MaxPodsPerNode
	}
	p.PodIpv4CidrSize = r.Cluster.NodeIpv4CidrSize
	p.NetworkConfig = &container.NodeNetworkConfig{PodIpv4CidrBlock: r.Cluster.ClusterIpv4Cidr, EnablePrivateNodes: r.private()}
	if pol := r.Cluster.IpAllocationPolicy; pol != nil {
		p.NetworkConfig.PodRange = pol.ClusterSecondaryRangeName
	}
	p.Autoscaling = &container.NodePoolAutoscaling{}
	if p.UpgradeSettings == nil {
		p.UpgradeSettings = &container.UpgradeSettings{MaxSurge: 1}
	}
	p.UpgradeSettings.Strategy = "SURGE"
	p.Etag = randomHex(4)
	hash := randomHex(4)
	p.InstanceGroupUrls = nil
	for _, z := range p.Locations {
		p.InstanceGroupUrls = append(p.InstanceGroupUrls, fmt.Sprintf("%s/compute/v1/projects/%s/zones/%s/instanceGroupManagers/%s", e.cfg.BaseURL, r.Project, z, groupName(r.Cluster.Name, p.Name, hash)))
	}
}

// groupName is the managed instance group name GKE gives a pool; node names
// are the group name and a suffix.
func groupName(clusterName, pool, hash string) string {
	return fmt.Sprintf("gke-%s-%s-%s-grp", truncate(clusterName, 16), truncate(pool, 16), hash)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return strings.TrimRight(s[:n], "-")
	}
	return s
}

// poolHash is the random part of the pool's group name.
func poolHash(p *container.NodePool) string {
	if len(p.InstanceGroupUrls) == 0 {
		return "00000000"
	}
	parts := strings.Split(p.InstanceGroupUrls[0], "-")
	return parts[len(parts)-2]
}

// addNodes adds count nodes (per zone of the pool) to the record, with
// names and internal addresses.
func (e *Engine) addNodes(a *allocator, r *ClusterRecord, p *container.NodePool, count int64) error {
	for range count * int64(len(p.Locations)) {
		n, err := e.newNode(a, r, p)
		if err != nil {
			return err
		}
		r.Nodes[p.Name] = append(r.Nodes[p.Name], n)
	}
	return nil
}

// newNode names a new node of pool p and gives it its addresses.
func (e *Engine) newNode(a *allocator, r *ClusterRecord, p *container.NodePool) (NodeRecord, error) {
	subnet, err := r.nodeRange()
	if err != nil {
		return NodeRecord{}, err
	}
	ip, err := a.ip(r.nodeIPKind(), subnet, 2)
	if err != nil {
		return NodeRecord{}, status.Errorf(status.FailedPrecondition, "Subnetwork %s has no free address for a node: %v", r.Cluster.Subnetwork, err)
	}
	kubelet, err := a.ip("host", e.cfg.HostPool, 2, KubeletPort)
	if err != nil {
		return NodeRecord{}, status.Errorf(status.FailedPrecondition, "%v", err)
	}
	// Four random hex digits, as GKE's instance names; a big pool draws
	// the same ones (1,000 nodes: about eight pairs), so a name is drawn
	// again until no node has it, as a managed instance group does.
	var name string
	for name == "" || r.hasNode(name) {
		name = fmt.Sprintf("gke-%s-%s-%s-%s", truncate(r.Cluster.Name, 16), truncate(p.Name, 16), poolHash(p), randomHex(2))
	}
	return NodeRecord{Name: name, InternalIP: ip.String(), KubeletIP: kubelet.String(), Endpoint: r.EndpointIP}, nil
}

func (r *ClusterRecord) hasNode(name string) bool {
	for _, nodes := range r.Nodes {
		for _, n := range nodes {
			if n.Name == name {
				return true
			}
		}
	}
	return false
}

// nodeRange is where the cluster's node addresses come from: its
// subnetwork's primary range (the default one for records from before
// clusters had their own).
func (r *ClusterRecord) nodeRange() (netip.Prefix, error) {
	if r.NodeRange != "" {
		return netip.ParsePrefix(r.NodeRange)
	}
	loc, _ := ParseLocation(r.Location)
	auto, _ := vpc.AutoRange(loc.Region)
	return netip.ParsePrefix(auto)
}

// SimulatedLabel, set to "true" among a node pool's labels
// (`--node-labels kubeyard.dev/simulated=true`), makes its nodes
// simulated: real Node objects whose pods are Running at once with no
// container, for scale tests. Pools are real otherwise.
const SimulatedLabel = cluster.SimulatedLabel

// nodes returns what the runtime needs to run the pool's nodes.
func (e *Engine) nodes(r *ClusterRecord, p *container.NodePool) []cluster.Node {
	res := machineTypes[p.Config.MachineType]
	subnet, _ := r.nodeRange()
	var out []cluster.Node
	for i, n := range r.Nodes[p.Name] {
		zone := nodeZone(p.Locations, i)
		labels := map[string]string{
			"cloud.google.com/gke-nodepool":    p.Name,
			"cloud.google.com/machine-family":  strings.Split(p.Config.MachineType, "-")[0],
			"node.kubernetes.io/instance-type": p.Config.MachineType,
			"topology.kubernetes.io/region":    strings.TrimSuffix(zone, zone[strings.LastIndexByte(zone, '-'):]),
			"topology.kubernetes.io/zone":      zone,
		}
		for k, v := range p.Config.Labels {
			labels[k] = v
		}
		node := cluster.Node{Name: n.Name, InternalIP: net.ParseIP(n.InternalIP), KubeletIP: net.ParseIP(n.KubeletIP), Labels: labels, CPU: res[0], Memory: res[1], MaxPods: int(p.MaxPodsConstraint.MaxPodsPerNode),
			Network: r.networkName(), Subnet: subnet, Tags: []string{r.nodeTag()}, RoutesBased: r.routesBased(),
			Simulated: p.Config.Labels[SimulatedLabel] == "true"}
		// A node's external address is the one this machine reaches it
		// at; private nodes have none.
		if !r.private() {
			node.ExternalIP = node.KubeletIP
		}
		out = append(out, node)
	}
	return out
}

// ensureToken returns a bootstrap token valid for at least an hour,
// creating a new one (24 h, as kubeadm) when needed.
func (e *Engine) ensureToken(ctx context.Context, r *ClusterRecord) (*ClusterRecord, error) {
	if r.BootstrapToken != "" && time.Until(r.BootstrapTokenExpires) > time.Hour {
		return r, nil
	}
	tok, err := e.runtime.CreateToken(ctx, e.spec(r), join.Token{TTL: 24 * time.Hour, Description: "kubeyard node pool bootstrap token", ForJoining: true})
	if err != nil {
		return nil, err
	}
	return e.updateCluster(ctx, r.Project, r.Location, r.Cluster.Name, func(r *ClusterRecord) error {
		r.BootstrapToken, r.BootstrapTokenExpires = tok.Token, tok.Expires
		return nil
	})
}

// ensurePoolNodes starts the pool's nodes and waits until they are Ready.
func (e *Engine) ensurePoolNodes(ctx context.Context, r *ClusterRecord, pool string) (*ClusterRecord, error) {
	r, err := e.ensureToken(ctx, r)
	if err != nil {
		return nil, err
	}
	p := r.pool(pool)
	if p == nil {
		return r, nil
	}
	if err := e.runtime.EnsureNodes(ctx, e.spec(r), e.nodes(r, p), r.BootstrapToken); err != nil {
		return nil, err
	}
	return r, e.addNodeRoutes(ctx, r, pool)
}

func (e *Engine) poolRecord(ctx context.Context, project, location, clusterName, pool string) (*ClusterRecord, int64, *container.NodePool, error) {
	r, rev, err := e.lookupCluster(ctx, project, location, clusterName)
	if err != nil {
		return nil, 0, nil, err
	}
	if pool == "" {
		return r, rev, nil, nil
	}
	p := r.pool(pool)
	if p == nil {
		return nil, 0, nil, status.Errorf(status.NotFound, "Not found: projects/%s/locations/%s/clusters/%s/nodePools/%s.", project, location, clusterName, pool)
	}
	return r, rev, p, nil
}

// CreateNodePool adds a pool and starts the CREATE_NODE_POOL operation.
func (e *Engine) CreateNodePool(ctx context.Context, project, location, clusterName string, p *container.NodePool) (*container.Operation, error) {
	if err := validatePool("nodePool", p); err != nil {
		return nil, err
	}
	r, rev, _, err := e.poolRecord(ctx, project, location, clusterName, "")
	if err != nil {
		return nil, err
	}
	if r.pool(p.Name) != nil {
		return nil, status.Errorf(status.AlreadyExists, "Already exists: projects/%s/locations/%s/clusters/%s/nodePools/%s.", project, location, clusterName, p.Name)
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", clusterName, r.Cluster.Status)
	}
	loc, _ := ParseLocation(location)
	r.Cluster.NodePools = append(r.Cluster.NodePools, p)
	e.fillPool(r, loc, p)
	alloc, err := e.newAllocator(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.addNodes(alloc, r, p, p.InitialNodeCount); err != nil {
		return nil, err
	}
	r.Allocations = append(r.Allocations, alloc.got...)
	op := e.newOperation(r, OpCreateNodePool, "clusters/"+clusterName+"/nodePools/"+p.Name)
	op.Pool = p.Name
	return e.startOperation(ctx, r, rev, op)
}

// GetNodePool returns one pool.
func (e *Engine) GetNodePool(ctx context.Context, project, location, clusterName, pool string) (*container.NodePool, error) {
	_, _, p, err := e.poolRecord(ctx, project, location, clusterName, pool)
	return p, err
}

// ListNodePools returns the cluster's pools.
func (e *Engine) ListNodePools(ctx context.Context, project, location, clusterName string) ([]*container.NodePool, error) {
	r, _, _, err := e.poolRecord(ctx, project, location, clusterName, "")
	if err != nil {
		return nil, err
	}
	return r.Cluster.NodePools, nil
}

// SetNodePoolSize starts the SET_NODE_POOL_SIZE operation: nodes are added,
// or drained and removed, until the pool has size nodes per zone.
func (e *Engine) SetNodePoolSize(ctx context.Context, project, location, clusterName, pool string, size int64) (*container.Operation, error) {
	if size < 0 || size > MaxNodesPerPool {
		return nil, status.Invalid("nodeCount", "Invalid value %d: the node count must be between 0 and %d.", size, MaxNodesPerPool)
	}
	r, rev, p, err := e.poolRecord(ctx, project, location, clusterName, pool)
	if err != nil {
		return nil, err
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	want := int(size) * len(p.Locations)
	have := len(r.Nodes[pool])
	if want > have {
		alloc, err := e.newAllocator(ctx)
		if err != nil {
			return nil, err
		}
		if err := e.addNodes(alloc, r, p, int64((want-have)/len(p.Locations))); err != nil {
			return nil, err
		}
		r.Allocations = append(r.Allocations, alloc.got...)
	}
	p.Status = "RECONCILING"
	op := e.newOperation(r, OpSetNodePoolSize, "clusters/"+clusterName+"/nodePools/"+pool)
	op.Pool, op.Size = pool, size
	return e.startOperation(ctx, r, rev, op)
}

// runReconcilePool brings a pool to its recorded nodes (create, grow) or to
// op.Size per zone (shrink), draining the nodes it removes.
func (e *Engine) runReconcilePool(ctx context.Context, op *operations.Record) error {
	r, _, p, err := e.poolRecord(ctx, op.Project, op.Location, op.ClusterName, op.Pool)
	if err != nil {
		return err
	}
	// Cut off by a crash: the engine's start left the cluster to this
	// operation, so its control plane and other pools are adopted here, or
	// nothing of them would be stopped with the engine.
	if op.Resumed {
		if err := e.resumeCluster(ctx, r); err != nil {
			return err
		}
	}
	if op.Op.OperationType == OpSetNodePoolSize {
		if want := int(op.Size) * len(p.Locations); len(r.Nodes[op.Pool]) > want {
			victims := slices.Clone(r.Nodes[op.Pool][want:])
			if r, err = e.removeNodes(ctx, op, r, victims, func(r *ClusterRecord) {
				for _, v := range victims {
					r.Nodes[op.Pool] = removeNode(r.Nodes[op.Pool], v.Name)
				}
			}); err != nil {
				return err
			}
		}
	}
	e.ops.Stage(ctx, op, "Starting nodes of "+op.Pool)
	if _, err := e.ensurePoolNodes(ctx, r, op.Pool); err != nil {
		return err
	}
	_, err = e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
		if p := r.pool(op.Pool); p != nil {
			p.Status, p.StatusMessage = "RUNNING", ""
			if op.Op.OperationType == OpSetNodePoolSize {
				p.InitialNodeCount = op.Size
			}
		}
		r.Cluster.CurrentNodeCount = countNodes(r)
		return nil
	})
	return err
}

// DeleteNodePool starts the DELETE_NODE_POOL operation.
func (e *Engine) DeleteNodePool(ctx context.Context, project, location, clusterName, pool string) (*container.Operation, error) {
	r, rev, p, err := e.poolRecord(ctx, project, location, clusterName, pool)
	if err != nil {
		return nil, err
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	p.Status = "STOPPING"
	op := e.newOperation(r, OpDeleteNodePool, "clusters/"+clusterName+"/nodePools/"+pool)
	op.Pool = pool
	return e.startOperation(ctx, r, rev, op)
}

func (e *Engine) runDeleteNodePool(ctx context.Context, op *operations.Record) error {
	r, _, _, err := e.poolRecord(ctx, op.Project, op.Location, op.ClusterName, op.Pool)
	if err != nil {
		if status.Is(err, status.NotFound) {
			return nil
		}
		return err
	}
	_, err = e.removeNodes(ctx, op, r, r.Nodes[op.Pool], func(r *ClusterRecord) {
		delete(r.Nodes, op.Pool)
		r.Cluster.NodePools = slices.DeleteFunc(r.Cluster.NodePools, func(p *container.NodePool) bool { return p.Name == op.Pool })
	})
	return err
}

// removeNodesAtOnce is how many nodes are drained and removed together, as
// a managed instance group deletes instances in parallel.
const removeNodesAtOnce = 32

// removeNodes drains and removes nodes, removeNodesAtOnce at a time, then
// takes them out of the record (dropNodes) in one commit.
func (e *Engine) removeNodes(ctx context.Context, op *operations.Record, r *ClusterRecord, nodes []NodeRecord, change func(*ClusterRecord)) (*ClusterRecord, error) {
	if len(nodes) == 1 {
		e.ops.Stage(ctx, op, "Draining and deleting node "+nodes[0].Name)
	} else if len(nodes) > 1 {
		e.ops.Stage(ctx, op, fmt.Sprintf("Draining and deleting %d nodes", len(nodes)))
	}
	s := e.spec(r)
	errs := make([]error, len(nodes))
	slots := make(chan struct{}, removeNodesAtOnce)
	var wg sync.WaitGroup
	for i, n := range nodes {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = e.runtime.RemoveNode(ctx, s, n.Name)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := e.runtime.ScaleDNS(ctx, s); err != nil {
		return nil, err
	}
	return e.dropNodes(ctx, r, nodes, change)
}

// dropNodes takes removed nodes out of the record (change removes them
// from their lists) and frees their addresses, in one commit; their routes
// go first. A crash in between leaves the nodes recorded, and the resumed
// operation removes them again.
func (e *Engine) dropNodes(ctx context.Context, r *ClusterRecord, nodes []NodeRecord, change func(*ClusterRecord)) (*ClusterRecord, error) {
	if err := e.removeNodeRoutes(ctx, r, nodes...); err != nil {
		return nil, err
	}
	return e.updateCluster(ctx, r.Project, r.Location, r.Cluster.Name, func(r *ClusterRecord) error {
		change(r)
		for _, n := range nodes {
			for _, k := range n.allocations(r) {
				r.Allocations = removeString(r.Allocations, k)
			}
		}
		r.Cluster.CurrentNodeCount = countNodes(r)
		return nil
	})
}

func removeNode(nodes []NodeRecord, name string) []NodeRecord {
	var out []NodeRecord
	for _, n := range nodes {
		if n.Name != name {
			out = append(out, n)
		}
	}
	return out
}

func removeString(list []string, s string) []string {
	var out []string
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
