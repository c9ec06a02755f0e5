package engine

import (
	"context"
	"hash/fnv"
	"strings"

	compute "google.golang.org/api/compute/v1"
	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// ListInstances returns the project's VM instances in zone ("" for every
// zone): the nodes of its clusters, as Compute Engine lists the instances
// of GKE node pools. A private node has no external address.
func (e *Engine) ListInstances(ctx context.Context, project, zone string) ([]*compute.Instance, error) {
	records, err := e.listClusters(ctx, "clusters/"+project+"/")
	if err != nil {
		return nil, err
	}
	out := []*compute.Instance{}
	for _, r := range records {
		for _, p := range r.Cluster.NodePools {
			for i, n := range r.Nodes[p.Name] {
				if z := nodeZone(p.Locations, i); zone == "" || z == zone {
					out = append(out, e.instance(r, p.Config.MachineType, z, n))
				}
			}
		}
	}
	return out, nil
}

// GetInstance returns one instance.
func (e *Engine) GetInstance(ctx context.Context, project, zone, name string) (*compute.Instance, error) {
	all, err := e.ListInstances(ctx, project, zone)
	if err != nil {
		return nil, err
	}
	for _, in := range all {
		if in.Name == name {
			return in, nil
		}
	}
	return nil, status.Errorf(status.NotFound, "The resource 'projects/%s/zones/%s/instances/%s' was not found", project, zone, name)
}

// nodeZone is the zone of a pool's i-th node: nodes go round the pool's
// zones.
func nodeZone(zones []string, i int) string { return zones[i%len(zones)] }

func (e *Engine) instance(r *ClusterRecord, machineType, zone string, n NodeRecord) *compute.Instance {
	base := e.cfg.BaseURL + "/compute/v1/projects/" + r.Project
	loc, _ := ParseLocation(r.Location)
	nic := &compute.NetworkInterface{Name: "nic0", NetworkIP: n.InternalIP, StackType: "IPV4_ONLY",
		Network:    e.vpc.NetworkURL(r.Project, vpc.ResourceName(r.Cluster.Network)),
		Subnetwork: e.vpc.SubnetURL(r.Project, loc.Region, r.Cluster.Subnetwork)}
	if !r.private() {
		nic.AccessConfigs = []*compute.AccessConfig{{Kind: "compute#accessConfig", Name: "external-nat", Type: "ONE_TO_ONE_NAT", NatIP: n.KubeletIP}}
	}
	id := fnv.New64a()
	id.Write([]byte(r.UID + n.Name))
	return &compute.Instance{
		Kind: "compute#instance", Id: id.Sum64(), Name: n.Name, Status: "RUNNING", CreationTimestamp: r.Cluster.CreateTime,
		Zone: base + "/zones/" + zone, MachineType: base + "/zones/" + zone + "/machineTypes/" + machineType,
		SelfLink: base + "/zones/" + zone + "/instances/" + n.Name, NetworkInterfaces: []*compute.NetworkInterface{nic},
		Tags:   &compute.Tags{Items: []string{r.nodeTag()}},
		Labels: map[string]string{"goog-gke-node": "", "goog-k8s-cluster-name": r.Cluster.Name},
	}
}

// InstanceGroup is a node pool's managed instance group in one zone, as
// Compute Engine shows it: the manager (the pool's instanceGroupUrl), the
// group it manages, and the instances in it, which are the pool's nodes
// in that zone. Their size follows the pool's.
type InstanceGroup struct {
	Manager   *compute.InstanceGroupManager
	Group     *compute.InstanceGroup
	Instances []*compute.Instance
}

// ListInstanceGroups returns the project's node pools' instance groups in
// zone ("" for every zone).
func (e *Engine) ListInstanceGroups(ctx context.Context, project, zone string) ([]InstanceGroup, error) {
	records, err := e.listClusters(ctx, "clusters/"+project+"/")
	if err != nil {
		return nil, err
	}
	out := []InstanceGroup{}
	for _, r := range records {
		for _, p := range r.Cluster.NodePools {
			for _, url := range p.InstanceGroupUrls {
				if z := urlSegment(url, "zones"); zone == "" || z == zone {
					out = append(out, e.instanceGroup(r, p, url))
				}
			}
		}
	}
	return out, nil
}

// GetInstanceGroup returns the instance group whose manager or group is
// called name in zone.
func (e *Engine) GetInstanceGroup(ctx context.Context, project, zone, name string) (InstanceGroup, error) {
	groups, err := e.ListInstanceGroups(ctx, project, zone)
	if err != nil {
		return InstanceGroup{}, err
	}
	for _, g := range groups {
		if g.Manager.Name == name {
			return g, nil
		}
	}
	return InstanceGroup{}, status.Errorf(status.NotFound, "The resource 'projects/%s/zones/%s/instanceGroupManagers/%s' was not found", project, zone, name)
}

func (e *Engine) instanceGroup(r *ClusterRecord, p *container.NodePool, url string) InstanceGroup {
	zone, name := urlSegment(url, "zones"), url[strings.LastIndexByte(url, '/')+1:]
	base := e.cfg.BaseURL + "/compute/v1/projects/" + r.Project
	var members []*compute.Instance
	for i, n := range r.Nodes[p.Name] {
		if nodeZone(p.Locations, i) == zone {
			members = append(members, e.instance(r, p.Config.MachineType, zone, n))
		}
	}
	id := fnv.New64a()
	id.Write([]byte(r.UID + url))
	template := strings.TrimSuffix(name, "-grp")
	size := int64(len(members))
	loc, _ := ParseLocation(r.Location)
	group := &compute.InstanceGroup{
		Kind: "compute#instanceGroup", Id: id.Sum64(), Name: name, Zone: base + "/zones/" + zone, Size: size,
		SelfLink:          base + "/zones/" + zone + "/instanceGroups/" + name,
		Network:           e.vpc.NetworkURL(r.Project, vpc.ResourceName(r.Cluster.Network)),
		Subnetwork:        e.vpc.SubnetURL(r.Project, loc.Region, r.Cluster.Subnetwork),
		CreationTimestamp: r.Cluster.CreateTime, Fingerprint: p.Etag,
	}
	manager := &compute.InstanceGroupManager{
		Kind: "compute#instanceGroupManager", Id: id.Sum64() + 1, Name: name, Zone: group.Zone, SelfLink: url,
		BaseInstanceName: template, InstanceTemplate: base + "/global/instanceTemplates/" + template,
		Versions:      []*compute.InstanceGroupManagerVersion{{InstanceTemplate: base + "/global/instanceTemplates/" + template}},
		InstanceGroup: group.SelfLink, TargetSize: size, CreationTimestamp: r.Cluster.CreateTime, Fingerprint: p.Etag,
		CurrentActions: &compute.InstanceGroupManagerActionsSummary{None: size},
		Status:         &compute.InstanceGroupManagerStatus{IsStable: true},
		UpdatePolicy:   &compute.InstanceGroupManagerUpdatePolicy{Type: "OPPORTUNISTIC", MinimalAction: "REPLACE", ReplacementMethod: "SUBSTITUTE"},
	}
	return InstanceGroup{Manager: manager, Group: group, Instances: members}
}

// urlSegment is what follows kind in a resource URL (".../zones/Z/..." ->
// Z).
func urlSegment(url, kind string) string {
	_, rest, ok := strings.Cut(url, "/"+kind+"/")
	if !ok {
		return ""
	}
	seg, _, _ := strings.Cut(rest, "/")
	return seg
}
