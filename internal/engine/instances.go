package engine

import (
	"context"
	"hash/fnv"

	compute "google.golang.org/api/compute/v1"

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
