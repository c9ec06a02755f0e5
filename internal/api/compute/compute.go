// Package compute serves the slice of the Compute Engine API (compute/v1)
// that GKE workflows touch: networks and their peerings, subnetworks,
// firewall rules, routes, routers and their operations, and the instances
// and instance groups (read only) that clusters' nodes and node pools are,
// and the forwarding rules, target pools and backend services (read only)
// of their LoadBalancer Services.
// Handlers only decode, check the fields against what the engine honours,
// call the VPC model and encode.
package compute

import (
	"context"
	"net/http"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// Request fields the engine honours; everything else is refused by name.
var (
	networkFields = codec.Fields{"name", "description", "autoCreateSubnetworks", "routingConfig.routingMode", "mtu",
		`networkFirewallPolicyEnforcementOrder="AFTER_CLASSIC_FIREWALL"`}
	logFields = []string{"logConfig.enable", "logConfig.aggregationInterval", "logConfig.flowSampling", "logConfig.metadata",
		// Flow logs are written for every flow: no filter, no custom
		// metadata.
		`logConfig.filterExpr="true"`, `logConfig.filterExpr=""`}
	subnetFields = codec.Fields(append([]string{"name", "description", "network", "region", "ipCidrRange",
		"secondaryIpRanges[].rangeName", "secondaryIpRanges[].ipCidrRange", "privateIpGoogleAccess", "enableFlowLogs", "stackType"}, logFields...))
	firewallFields = codec.Fields{"name", "description", "network", "priority", "direction", "disabled",
		"allowed[].IPProtocol", "allowed[].ports", "denied[].IPProtocol", "denied[].ports",
		"sourceRanges", "destinationRanges", "sourceTags", "targetTags", "logConfig.enable", "logConfig.metadata"}
	routeFields         = codec.Fields{"name", "description", "network", "destRange", "priority", "nextHopGateway", "nextHopIp", "tags"}
	peeringExchange     = []string{"networkPeering.exportCustomRoutes", "networkPeering.importCustomRoutes", "networkPeering.exportSubnetRoutesWithPublicIp", "networkPeering.importSubnetRoutesWithPublicIp"}
	addPeeringFields    = codec.Fields(append([]string{"networkPeering.name", "networkPeering.network", "networkPeering.exchangeSubnetRoutes", "networkPeering.autoCreateRoutes"}, peeringExchange...))
	updatePeeringFields = codec.Fields(append([]string{"networkPeering.name"}, peeringExchange...))
	routerFields        = codec.Fields{"name", "description", "network", "region", "bgp.asn", "bgp.advertiseMode", "bgp.advertisedGroups",
		"bgp.advertisedIpRanges[].range", "bgp.advertisedIpRanges[].description", "kind", "id", "selfLink", "creationTimestamp",
		"bgp.keepaliveInterval=20"}
	patchFields = codec.Fields(append([]string{"fingerprint", "description", "enableFlowLogs", "privateIpGoogleAccess",
		"secondaryIpRanges[].rangeName", "secondaryIpRanges[].ipCidrRange",
		// gcloud sends back what it read; the names must match.
		"name", "region", "network", "ipCidrRange"}, logFields...))
)

const root = "/compute/v1/projects/{project}"

// Machines are the regions and zones, the VM instances of a project (its
// clusters' nodes), the node pools' instance groups and their Services'
// load balancers, read only.
type Machines interface {
	ListRegions(ctx context.Context, project string) ([]*compute.Region, error)
	ListZones(ctx context.Context, project string) ([]*compute.Zone, error)
	ListInstances(ctx context.Context, project, zone string) ([]*compute.Instance, error)
	GetInstance(ctx context.Context, project, zone, name string) (*compute.Instance, error)
	InstanceGroups
	LoadBalancers
}

// Register adds the Compute routes to mux.
func Register(mux *http.ServeMux, v *vpc.Service, instances Machines) {
	registerInstanceGroups(mux, instances)
	registerLoadBalancers(mux, instances)
	h := func(pattern string, f func(r *http.Request) (any, error)) { codec.HandleJSON(mux, pattern, f) }
	p := func(r *http.Request) string { return r.PathValue("project") }

	h("POST "+root+"/global/networks", func(r *http.Request) (any, error) {
		var req struct {
			compute.Network
			// Absent means a legacy network, which kubeyard does not make.
			AutoCreateSubnetworks *bool `json:"autoCreateSubnetworks"`
		}
		if err := codec.Decode(r, networkFields, &req); err != nil {
			return nil, err
		}
		if req.AutoCreateSubnetworks == nil {
			return nil, status.Invalid("autoCreateSubnetworks", "Legacy networks are not supported by kubeyard: create a VPC network (--subnet-mode auto or custom).")
		}
		req.Network.AutoCreateSubnetworks = *req.AutoCreateSubnetworks
		return v.InsertNetwork(r.Context(), p(r), &req.Network)
	})
	h("GET "+root+"/global/networks", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Network, error) { return v.ListNetworks(r.Context(), p(r)) })
		return &compute.NetworkList{Kind: "compute#networkList", Items: items}, err
	})
	h("GET "+root+"/global/networks/{name}", func(r *http.Request) (any, error) {
		return v.GetNetwork(r.Context(), p(r), r.PathValue("name"))
	})
	h("DELETE "+root+"/global/networks/{name}", func(r *http.Request) (any, error) {
		return v.DeleteNetwork(r.Context(), p(r), r.PathValue("name"))
	})

	h("POST "+root+"/global/networks/{name}/addPeering", func(r *http.Request) (any, error) {
		var req struct {
			NetworkPeering struct {
				Name    string `json:"name"`
				Network string `json:"network"`
				// Subnet routes are always exchanged; gcloud says so.
				ExchangeSubnetRoutes *bool `json:"exchangeSubnetRoutes"`
				AutoCreateRoutes     *bool `json:"autoCreateRoutes"`
				peeringFlags
			} `json:"networkPeering"`
		}
		if err := codec.Decode(r, addPeeringFields, &req); err != nil {
			return nil, err
		}
		np := req.NetworkPeering
		for field, v := range map[string]*bool{"networkPeering.exchangeSubnetRoutes": np.ExchangeSubnetRoutes, "networkPeering.autoCreateRoutes": np.AutoCreateRoutes} {
			if v != nil && !*v {
				return nil, status.Invalid(field, "Subnet routes are always exchanged between peered networks.")
			}
		}
		return v.AddPeering(r.Context(), p(r), r.PathValue("name"), &compute.NetworkPeering{Name: np.Name, Network: np.Network}, np.change())
	})
	h("PATCH "+root+"/global/networks/{name}/updatePeering", func(r *http.Request) (any, error) {
		var req struct {
			NetworkPeering struct {
				Name string `json:"name"`
				peeringFlags
			} `json:"networkPeering"`
		}
		if err := codec.Decode(r, updatePeeringFields, &req); err != nil {
			return nil, err
		}
		return v.UpdatePeering(r.Context(), p(r), r.PathValue("name"), req.NetworkPeering.Name, req.NetworkPeering.change())
	})
	h("POST "+root+"/global/networks/{name}/removePeering", func(r *http.Request) (any, error) {
		var req struct {
			Name string `json:"name"`
		}
		if err := codec.Decode(r, codec.Fields{"name"}, &req); err != nil {
			return nil, err
		}
		return v.RemovePeering(r.Context(), p(r), r.PathValue("name"), req.Name)
	})

	h("POST "+root+"/regions/{region}/subnetworks", func(r *http.Request) (any, error) {
		var sub compute.Subnetwork
		if err := codec.Decode(r, subnetFields, &sub); err != nil {
			return nil, err
		}
		return v.InsertSubnet(r.Context(), p(r), r.PathValue("region"), &sub)
	})
	h("GET "+root+"/regions/{region}/subnetworks", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Subnetwork, error) { return v.ListSubnets(r.Context(), p(r), r.PathValue("region")) })
		return &compute.SubnetworkList{Kind: "compute#subnetworkList", Items: items}, err
	})
	h("GET "+root+"/aggregated/subnetworks", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Subnetwork, error) { return v.ListSubnets(r.Context(), p(r), "") })
		if err != nil {
			return nil, err
		}
		out := &compute.SubnetworkAggregatedList{Kind: "compute#subnetworkAggregatedList", Items: map[string]compute.SubnetworksScopedList{}}
		for scope, subs := range byRegion(items, func(sub *compute.Subnetwork) string { return sub.Region }) {
			out.Items[scope] = compute.SubnetworksScopedList{Subnetworks: subs}
		}
		return out, nil
	})
	h("GET "+root+"/regions/{region}/subnetworks/{name}", func(r *http.Request) (any, error) {
		return v.GetSubnet(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"))
	})
	h("PATCH "+root+"/regions/{region}/subnetworks/{name}", func(r *http.Request) (any, error) {
		var req struct {
			Name, Region, Network, IpCidrRange string
			Fingerprint                        string                               `json:"fingerprint"`
			Description                        *string                              `json:"description"`
			EnableFlowLogs                     *bool                                `json:"enableFlowLogs"`
			PrivateIPGoogleAccess              *bool                                `json:"privateIpGoogleAccess"`
			LogConfig                          *compute.SubnetworkLogConfig         `json:"logConfig"`
			SecondaryIPRanges                  *[]*compute.SubnetworkSecondaryRange `json:"secondaryIpRanges"`
		}
		if err := codec.Decode(r, patchFields, &req); err != nil {
			return nil, err
		}
		return v.PatchSubnet(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"), vpc.SubnetPatch{
			Name: req.Name, Network: req.Network, IPCidrRange: req.IpCidrRange, Fingerprint: req.Fingerprint, Description: req.Description, EnableFlowLogs: req.EnableFlowLogs,
			LogConfig: req.LogConfig, PrivateIPGoogleAccess: req.PrivateIPGoogleAccess, SecondaryIPRanges: req.SecondaryIPRanges,
		})
	})
	h("POST "+root+"/regions/{region}/subnetworks/{name}/setPrivateIpGoogleAccess", func(r *http.Request) (any, error) {
		var req struct {
			PrivateIPGoogleAccess bool `json:"privateIpGoogleAccess"`
		}
		if err := codec.Decode(r, codec.Fields{"privateIpGoogleAccess"}, &req); err != nil {
			return nil, err
		}
		return v.PatchSubnet(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"), vpc.SubnetPatch{PrivateIPGoogleAccess: &req.PrivateIPGoogleAccess})
	})
	h("POST "+root+"/regions/{region}/subnetworks/{name}/expandIpCidrRange", func(r *http.Request) (any, error) {
		var req compute.SubnetworksExpandIpCidrRangeRequest
		if err := codec.Decode(r, codec.Fields{"ipCidrRange"}, &req); err != nil {
			return nil, err
		}
		return v.ExpandSubnet(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"), req.IpCidrRange)
	})
	h("DELETE "+root+"/regions/{region}/subnetworks/{name}", func(r *http.Request) (any, error) {
		return v.DeleteSubnet(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"))
	})

	h("POST "+root+"/global/firewalls", func(r *http.Request) (any, error) {
		var req struct {
			compute.Firewall
			// Absent means the default, 1000; 0 is the highest priority.
			Priority *int64 `json:"priority"`
		}
		if err := codec.Decode(r, firewallFields, &req); err != nil {
			return nil, err
		}
		return v.InsertFirewall(r.Context(), p(r), &req.Firewall, req.Priority)
	})
	h("PATCH "+root+"/global/firewalls/{name}", func(r *http.Request) (any, error) {
		// The identity fields (name, network, direction) must match.
		var patch vpc.FirewallPatch
		if err := codec.Decode(r, firewallFields, &patch); err != nil {
			return nil, err
		}
		return v.PatchFirewall(r.Context(), p(r), r.PathValue("name"), patch)
	})
	h("GET "+root+"/global/firewalls", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Firewall, error) { return v.ListFirewalls(r.Context(), p(r)) })
		return &compute.FirewallList{Kind: "compute#firewallList", Items: items}, err
	})
	h("GET "+root+"/global/firewalls/{name}", func(r *http.Request) (any, error) {
		return v.GetFirewall(r.Context(), p(r), r.PathValue("name"))
	})
	h("DELETE "+root+"/global/firewalls/{name}", func(r *http.Request) (any, error) {
		return v.DeleteFirewall(r.Context(), p(r), r.PathValue("name"))
	})

	h("POST "+root+"/global/routes", func(r *http.Request) (any, error) {
		var route compute.Route
		if err := codec.Decode(r, routeFields, &route); err != nil {
			return nil, err
		}
		return v.InsertRoute(r.Context(), p(r), &route)
	})
	h("GET "+root+"/global/routes", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Route, error) { return v.ListRoutes(r.Context(), p(r)) })
		return &compute.RouteList{Kind: "compute#routeList", Items: items}, err
	})
	h("GET "+root+"/global/routes/{name}", func(r *http.Request) (any, error) {
		return v.GetRoute(r.Context(), p(r), r.PathValue("name"))
	})
	h("DELETE "+root+"/global/routes/{name}", func(r *http.Request) (any, error) {
		return v.DeleteRoute(r.Context(), p(r), r.PathValue("name"))
	})

	h("POST "+root+"/regions/{region}/routers", func(r *http.Request) (any, error) {
		var router compute.Router
		if err := codec.Decode(r, routerFields, &router); err != nil {
			return nil, err
		}
		return v.InsertRouter(r.Context(), p(r), r.PathValue("region"), &router)
	})
	h("GET "+root+"/regions/{region}/routers", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Router, error) { return v.ListRouters(r.Context(), p(r), r.PathValue("region")) })
		return &compute.RouterList{Kind: "compute#routerList", Items: items}, err
	})
	h("GET "+root+"/aggregated/routers", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Router, error) { return v.ListRouters(r.Context(), p(r), "") })
		if err != nil {
			return nil, err
		}
		out := &compute.RouterAggregatedList{Kind: "compute#routerAggregatedList", Items: map[string]compute.RoutersScopedList{}}
		for scope, routers := range byRegion(items, func(r *compute.Router) string { return r.Region }) {
			out.Items[scope] = compute.RoutersScopedList{Routers: routers}
		}
		return out, nil
	})
	h("GET "+root+"/regions/{region}/routers/{name}", func(r *http.Request) (any, error) {
		return v.GetRouter(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"))
	})
	h("PATCH "+root+"/regions/{region}/routers/{name}", func(r *http.Request) (any, error) {
		var router compute.Router
		if err := codec.Decode(r, routerFields, &router); err != nil {
			return nil, err
		}
		if router.Name != "" && router.Name != r.PathValue("name") {
			return nil, status.Invalid("resource.name", "A router cannot be renamed.")
		}
		return v.PatchRouter(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"), router.Bgp)
	})
	h("DELETE "+root+"/regions/{region}/routers/{name}", func(r *http.Request) (any, error) {
		return v.DeleteRouter(r.Context(), p(r), r.PathValue("region"), r.PathValue("name"))
	})

	h("GET "+root+"/regions", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Region, error) { return instances.ListRegions(r.Context(), p(r)) })
		return &compute.RegionList{Kind: "compute#regionList", Items: items}, err
	})
	h("GET "+root+"/zones", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Zone, error) { return instances.ListZones(r.Context(), p(r)) })
		return &compute.ZoneList{Kind: "compute#zoneList", Items: items}, err
	})
	h("GET "+root+"/zones/{zone}/instances", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Instance, error) {
			return instances.ListInstances(r.Context(), p(r), r.PathValue("zone"))
		})
		return &compute.InstanceList{Kind: "compute#instanceList", Items: items}, err
	})
	h("GET "+root+"/aggregated/instances", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.Instance, error) { return instances.ListInstances(r.Context(), p(r), "") })
		if err != nil {
			return nil, err
		}
		out := &compute.InstanceAggregatedList{Kind: "compute#instanceAggregatedList", Items: map[string]compute.InstancesScopedList{}}
		for _, in := range items {
			scope := "zones/" + vpc.ResourceName(in.Zone)
			out.Items[scope] = compute.InstancesScopedList{Instances: append(out.Items[scope].Instances, in)}
		}
		return out, nil
	})
	h("GET "+root+"/zones/{zone}/instances/{name}", func(r *http.Request) (any, error) {
		return instances.GetInstance(r.Context(), p(r), r.PathValue("zone"), r.PathValue("name"))
	})
	// Operations are DONE when returned; get and wait answer at once.
	for _, verb := range []string{"GET ", "POST "} {
		suffix := ""
		if verb == "POST " {
			suffix = "/wait"
		}
		h(verb+root+"/global/operations/{op}"+suffix, func(r *http.Request) (any, error) {
			return v.GetOperation(r.Context(), p(r), "global", r.PathValue("op"))
		})
		h(verb+root+"/regions/{region}/operations/{op}"+suffix, func(r *http.Request) (any, error) {
			return v.GetOperation(r.Context(), p(r), r.PathValue("region"), r.PathValue("op"))
		})
	}
}

// byRegion groups regional resources by their aggregated-list scope,
// "regions/<region>".
func byRegion[T any](items []T, region func(T) string) map[string][]T {
	out := map[string][]T{}
	for _, it := range items {
		scope := "regions/" + vpc.ResourceName(region(it))
		out[scope] = append(out[scope], it)
	}
	return out
}

// filtered lists with list and keeps what the request's filter keeps.
func filtered[T any](r *http.Request, list func() ([]T, error)) ([]T, error) {
	f, err := parseFilter(r.URL.Query().Get("filter"))
	if err != nil {
		return nil, err
	}
	items, err := list()
	return keep(f, items), err
}

// peeringFlags are a peering's route exchange settings, nil when absent
// (an update changes only what it sends).
type peeringFlags struct {
	ExportCustomRoutes             *bool `json:"exportCustomRoutes"`
	ImportCustomRoutes             *bool `json:"importCustomRoutes"`
	ExportSubnetRoutesWithPublicIP *bool `json:"exportSubnetRoutesWithPublicIp"`
	ImportSubnetRoutesWithPublicIP *bool `json:"importSubnetRoutesWithPublicIp"`
}

func (f peeringFlags) change() vpc.PeeringChange {
	return vpc.PeeringChange{ExportCustomRoutes: f.ExportCustomRoutes, ImportCustomRoutes: f.ImportCustomRoutes,
		ExportSubnetRoutesWithPublicIP: f.ExportSubnetRoutesWithPublicIP, ImportSubnetRoutesWithPublicIP: f.ImportSubnetRoutesWithPublicIP}
}
