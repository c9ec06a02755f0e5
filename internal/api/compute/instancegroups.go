package compute

import (
	"context"
	"net/http"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// InstanceGroups are the managed instance groups of a project's node
// pools, read only: the pools' instanceGroupUrls name their managers.
type InstanceGroups interface {
	ListInstanceGroups(ctx context.Context, project, zone string) ([]engine.InstanceGroup, error)
	GetInstanceGroup(ctx context.Context, project, zone, name string) (engine.InstanceGroup, error)
}

// registerInstanceGroups adds instanceGroupManagers and instanceGroups
// (get, list, aggregated list, and the instances in each).
func registerInstanceGroups(mux *http.ServeMux, groups InstanceGroups) {
	h := func(pattern string, f func(r *http.Request) (any, error)) { codec.HandleJSON(mux, pattern, f) }
	p := func(r *http.Request) string { return r.PathValue("project") }
	get := func(r *http.Request) (engine.InstanceGroup, error) {
		return groups.GetInstanceGroup(r.Context(), p(r), r.PathValue("zone"), r.PathValue("name"))
	}
	managers := func(r *http.Request, zone string) ([]*compute.InstanceGroupManager, error) {
		return listGroups(r, groups, zone, func(g engine.InstanceGroup) *compute.InstanceGroupManager { return g.Manager })
	}
	instanceGroups := func(r *http.Request, zone string) ([]*compute.InstanceGroup, error) {
		return listGroups(r, groups, zone, func(g engine.InstanceGroup) *compute.InstanceGroup { return g.Group })
	}

	h("GET "+root+"/zones/{zone}/instanceGroupManagers", func(r *http.Request) (any, error) {
		items, err := managers(r, r.PathValue("zone"))
		return &compute.InstanceGroupManagerList{Kind: "compute#instanceGroupManagerList", Items: items}, err
	})
	h("GET "+root+"/aggregated/instanceGroupManagers", func(r *http.Request) (any, error) {
		items, err := managers(r, "")
		if err != nil {
			return nil, err
		}
		out := &compute.InstanceGroupManagerAggregatedList{Kind: "compute#instanceGroupManagerAggregatedList", Items: map[string]compute.InstanceGroupManagersScopedList{}}
		for _, m := range items {
			scope := "zones/" + vpc.ResourceName(m.Zone)
			out.Items[scope] = compute.InstanceGroupManagersScopedList{InstanceGroupManagers: append(out.Items[scope].InstanceGroupManagers, m)}
		}
		return out, nil
	})
	h("GET "+root+"/zones/{zone}/instanceGroupManagers/{name}", func(r *http.Request) (any, error) {
		g, err := get(r)
		return g.Manager, err
	})
	h("POST "+root+"/zones/{zone}/instanceGroupManagers/{name}/listManagedInstances", func(r *http.Request) (any, error) {
		g, err := get(r)
		if err != nil {
			return nil, err
		}
		out := &compute.InstanceGroupManagersListManagedInstancesResponse{ManagedInstances: []*compute.ManagedInstance{}}
		for _, in := range g.Instances {
			out.ManagedInstances = append(out.ManagedInstances, &compute.ManagedInstance{
				Id: in.Id, Name: in.Name, Instance: in.SelfLink, InstanceStatus: in.Status, CurrentAction: "NONE",
				Version: &compute.ManagedInstanceVersion{InstanceTemplate: g.Manager.InstanceTemplate},
			})
		}
		return out, nil
	})
	h("GET "+root+"/zones/{zone}/instanceGroups", func(r *http.Request) (any, error) {
		items, err := instanceGroups(r, r.PathValue("zone"))
		return &compute.InstanceGroupList{Kind: "compute#instanceGroupList", Items: items}, err
	})
	h("GET "+root+"/zones/{zone}/instanceGroups/{name}", func(r *http.Request) (any, error) {
		g, err := get(r)
		return g.Group, err
	})
	h("POST "+root+"/zones/{zone}/instanceGroups/{name}/listInstances", func(r *http.Request) (any, error) {
		g, err := get(r)
		if err != nil {
			return nil, err
		}
		out := &compute.InstanceGroupsListInstances{Kind: "compute#instanceGroupsListInstances", Items: []*compute.InstanceWithNamedPorts{}}
		for _, in := range g.Instances {
			out.Items = append(out.Items, &compute.InstanceWithNamedPorts{Instance: in.SelfLink, Status: in.Status})
		}
		return out, nil
	})
}

// listGroups lists the zone's (or, with zone "", every zone's) groups as
// one of their two faces, filtered as the request says.
func listGroups[T any](r *http.Request, groups InstanceGroups, zone string, face func(engine.InstanceGroup) T) ([]T, error) {
	return filtered(r, func() ([]T, error) {
		all, err := groups.ListInstanceGroups(r.Context(), r.PathValue("project"), zone)
		out := []T{}
		for _, g := range all {
			out = append(out, face(g))
		}
		return out, err
	})
}
