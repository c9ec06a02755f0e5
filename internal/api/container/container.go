// Package container serves the Google Kubernetes Engine API (container/v1)
// over the engine: clusters, node pools, operations and server config, under
// both projects/P/locations/L/... and the older projects/P/zones/Z/... paths.
// Handlers only decode, check the fields against what the engine honours,
// call the engine and encode.
package container

import (
	"context"
	"net/http"
	"strings"

	"cloud.google.com/go/container/apiv1/containerpb"
	gke "google.golang.org/api/container/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/status"
)

// Request fields the engine honours; everything else is refused by name.
var (
	nodeConfigFields = []string{
		"machineType", "diskSizeGb", "diskType", "imageType", "oauthScopes", "serviceAccount",
		"labels.*", "tags", "metadata.*", "resourceLabels.*",
		// GKE's defaults, which clients send back.
		`loggingConfig.variantConfig.variant="DEFAULT"`,
		`shieldedInstanceConfig.enableSecureBoot=false`, `shieldedInstanceConfig.enableIntegrityMonitoring=true`,
	}
	poolFields = append(prefixed("config.", nodeConfigFields),
		"name", "initialNodeCount", "version", "locations",
		"management.autoRepair", "management.autoUpgrade",
		"upgradeSettings.maxSurge", "upgradeSettings.maxUnavailable", `upgradeSettings.strategy="SURGE"`,
		"autoscaling.enabled=false", "networkConfig.enablePrivateNodes=false", "queuedProvisioning.enabled=false",
	)
	// The control-plane endpoints, in the two forms clients send them (as
	// cluster.X or update.desiredX): master authorized networks, whether
	// there is a public endpoint (the engine checks it against the
	// cluster), and the defaults of what the engine does not offer (a DNS
	// endpoint, global access, a private endpoint in another subnetwork).
	endpointsFields = []string{
		"controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.enabled",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.cidrBlocks[].cidrBlock",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.cidrBlocks[].displayName",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.enablePublicEndpoint",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.gcpPublicCidrsAccessEnabled=false",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.authorizedNetworksConfig.privateEndpointEnforcementEnabled=false",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.enabled=true",
		"controlPlaneEndpointsConfig.ipEndpointsConfig.globalAccess=false",
		`controlPlaneEndpointsConfig.ipEndpointsConfig.privateEndpointSubnetwork=""`,
		"controlPlaneEndpointsConfig.dnsEndpointConfig.allowExternalTraffic=false",
		"controlPlaneEndpointsConfig.dnsEndpointConfig.enableK8sCertsViaDns=false",
		"controlPlaneEndpointsConfig.dnsEndpointConfig.enableK8sTokensViaDns=false",
		"masterAuthorizedNetworksConfig.enabled",
		"masterAuthorizedNetworksConfig.cidrBlocks[].cidrBlock",
		"masterAuthorizedNetworksConfig.cidrBlocks[].displayName",
		"masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled=false",
		"masterAuthorizedNetworksConfig.privateEndpointEnforcementEnabled=false",
	}
	// A maintenance policy, as setMaintenancePolicy and a create take it.
	// Exclusions are checked further by the engine (scopes are refused).
	maintenancePolicyFields = []string{
		"maintenancePolicy.resourceVersion",
		"maintenancePolicy.window.dailyMaintenanceWindow.startTime",
		"maintenancePolicy.window.recurringWindow.window.startTime",
		"maintenancePolicy.window.recurringWindow.window.endTime",
		"maintenancePolicy.window.recurringWindow.recurrence",
		"maintenancePolicy.window.maintenanceExclusions.*",
	}
	// The resource's name, and the older form's projectId/zone/... fields.
	createFields  = []string{"parent", "projectId", "zone"}
	clusterFields = []string{"name", "projectId", "zone", "clusterId"}

	createClusterFields = codec.Fields(concat(prefixed("cluster.nodePools[].", poolFields),
		prefixed("cluster.nodeConfig.", nodeConfigFields), createFields, []string{
			"cluster.name", "cluster.description", "cluster.resourceLabels.*", "cluster.initialNodeCount",
			"cluster.initialClusterVersion", "cluster.locations", "cluster.network", "cluster.subnetwork",
			"cluster.networkConfig.network", "cluster.networkConfig.subnetwork", "cluster.networkConfig.defaultEnablePrivateNodes",
			"cluster.networkConfig.enableIntraNodeVisibility",
			"cluster.loggingService", "cluster.loggingConfig.componentConfig.enableComponents",
			"cluster.ipAllocationPolicy.useIpAliases", "cluster.ipAllocationPolicy.useRoutes", "cluster.ipAllocationPolicy.createSubnetwork",
			"cluster.ipAllocationPolicy.clusterSecondaryRangeName", "cluster.ipAllocationPolicy.servicesSecondaryRangeName",
			"cluster.ipAllocationPolicy.clusterIpv4CidrBlock", "cluster.ipAllocationPolicy.servicesIpv4CidrBlock",
			"cluster.ipAllocationPolicy.clusterIpv4Cidr", "cluster.ipAllocationPolicy.servicesIpv4Cidr",
			"cluster.defaultMaxPodsConstraint.maxPodsPerNode", "cluster.clusterIpv4Cidr",
			"cluster.privateClusterConfig.enablePrivateNodes", "cluster.privateClusterConfig.enablePrivateEndpoint",
			"cluster.privateClusterConfig.masterIpv4CidrBlock",
			// What GKE does by default and kubeyard too: the values
			// clients send for "off" or GKE's default.
			"cluster.autopilot.enabled=false", "cluster.autoscaling.enableNodeAutoprovisioning=false",
			"cluster.binaryAuthorization.enabled=false", `cluster.binaryAuthorization.evaluationMode="DISABLED"`,
			"cluster.legacyAbac.enabled=false", "cluster.networkPolicy.enabled=false", `cluster.networkPolicy.provider="PROVIDER_UNSPECIFIED"`,
			"cluster.notificationConfig.pubsub.enabled=false", `cluster.ipAllocationPolicy.stackType="IPV4"`,
			`cluster.releaseChannel.channel="REGULAR"`,
			// Nodes are shielded in the sense that matters for the
			// cluster: a node's identity can only come from the engine
			// (see shieldedNodes in the README). Off is not offered.
			"cluster.shieldedNodes.enabled=true",
		}, prefixed("cluster.", endpointsFields), prefixed("cluster.", maintenancePolicyFields)))
	createPoolFields = codec.Fields(append(prefixed("nodePool.", poolFields), "parent", "projectId", "zone", "clusterId"))
	setSizeFields    = codec.Fields(append([]string{"nodeCount", "nodePoolId"}, clusterFields...))
	setLabelsFields  = codec.Fields(append([]string{"resourceLabels.*", "labelFingerprint"}, clusterFields...))
	updateFields     = codec.Fields(concat([]string{"update.desiredMasterVersion", "update.desiredNodeVersion", "update.desiredNodePoolId",
		"update.desiredIntraNodeVisibilityConfig.enabled",
		"update.desiredLoggingService", "update.desiredLoggingConfig.componentConfig.enableComponents"}, clusterFields,
		prefixed("update.", desired(endpointsFields))))
	maintenanceFields      = codec.Fields(append(maintenancePolicyFields, clusterFields...))
	startRotationFields    = codec.Fields(append([]string{"rotateCredentials"}, clusterFields...))
	completeRotationFields = codec.Fields(clusterFields)
	cancelFields           = codec.Fields{"name", "projectId", "zone", "operationId"}
)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// desired turns cluster fields into a ClusterUpdate's ("fooConfig.x" ->
// "desiredFooConfig.x").
func desired(fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = "desired" + strings.ToUpper(f[:1]) + f[1:]
	}
	return out
}

func prefixed(prefix string, fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = prefix + f
	}
	return out
}

// Handler serves the GKE API.
type Handler struct {
	Engine *engine.Engine
}

// route is a parsed request path.
type route struct {
	project, location string
	// rest are the path segments after the location; verb is the custom
	// method (":setSize") or the older zones form's final segment.
	rest []string
	verb string
}

// parse splits /v1/projects/P/{locations|zones}/L/... ; ok is false for
// paths outside the API.
func parse(path string) (route, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) < 5 || segs[0] != "v1" || segs[1] != "projects" || (segs[3] != "locations" && segs[3] != "zones") {
		return route{}, false
	}
	rt := route{project: segs[2], location: segs[4], rest: segs[5:]}
	if n := len(rt.rest); n > 0 {
		if name, verb, ok := strings.Cut(rt.rest[n-1], ":"); ok {
			rt.rest[n-1], rt.verb = name, verb
		}
	}
	// The zones form names custom methods as path segments.
	legacy := map[string]string{"setSize": "setSize", "resourceLabels": "setResourceLabels"}
	if n := len(rt.rest); rt.verb == "" && n >= 3 {
		if verb, ok := legacy[rt.rest[n-1]]; ok {
			rt.rest, rt.verb = rt.rest[:n-1], verb
		}
	}
	return rt, true
}

func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := parse(r.URL.Path)
	if !ok {
		codec.Write(w, status.Errorf(status.NotFound, "No such method: %s %s.", r.Method, r.URL.Path))
		return
	}
	res, err := h.dispatch(r.Context(), r, rt)
	if err != nil {
		codec.Write(w, err)
		return
	}
	codec.WriteJSON(w, res)
}

func (h Handler) dispatch(ctx context.Context, r *http.Request, rt route) (any, error) {
	e, p, l := h.Engine, rt.project, rt.location
	rest := rt.rest
	key := r.Method + " " + shape(rest) + ":" + rt.verb
	switch key {
	case "GET serverconfig:", "GET serverConfig:":
		return e.ServerConfig(l)
	case "GET clusters:":
		clusters, err := e.ListClusters(ctx, p, l)
		if err != nil {
			return nil, err
		}
		return &gke.ListClustersResponse{Clusters: clusters, MissingZones: []string{}}, nil
	case "POST clusters:":
		var req gke.CreateClusterRequest
		var given struct {
			Cluster struct {
				Endpoints *endpointsGiven `json:"controlPlaneEndpointsConfig"`
			} `json:"cluster"`
		}
		if err := codec.DecodeMessage(r, createClusterFields, pbMessage(&containerpb.CreateClusterRequest{}), &req, &given); err != nil {
			return nil, err
		}
		if req.Cluster != nil {
			given.Cluster.Endpoints.mark(req.Cluster.ControlPlaneEndpointsConfig)
		}
		return e.CreateCluster(ctx, p, l, req.Cluster)
	case "GET clusters/*:":
		return e.GetCluster(ctx, p, l, rest[1])
	case "DELETE clusters/*:":
		return e.DeleteCluster(ctx, p, l, rest[1])
	case "PUT clusters/*:", "POST clusters/*:update":
		var req gke.UpdateClusterRequest
		var given struct {
			Update struct {
				Endpoints *endpointsGiven `json:"desiredControlPlaneEndpointsConfig"`
			} `json:"update"`
		}
		if err := codec.DecodeMessage(r, updateFields, pbMessage(&containerpb.UpdateClusterRequest{}), &req, &given); err != nil {
			return nil, err
		}
		if req.Update != nil {
			given.Update.Endpoints.mark(req.Update.DesiredControlPlaneEndpointsConfig)
		}
		return e.UpdateCluster(ctx, p, l, rest[1], req.Update)
	case "POST clusters/*:setResourceLabels":
		var req gke.SetLabelsRequest
		if err := codec.DecodeMessage(r, setLabelsFields, pbMessage(&containerpb.SetLabelsRequest{}), &req); err != nil {
			return nil, err
		}
		return e.SetLabels(ctx, p, l, rest[1], req.ResourceLabels, req.LabelFingerprint)
	case "POST clusters/*:setMaintenancePolicy":
		var req gke.SetMaintenancePolicyRequest
		if err := codec.DecodeMessage(r, maintenanceFields, pbMessage(&containerpb.SetMaintenancePolicyRequest{}), &req); err != nil {
			return nil, err
		}
		return e.SetMaintenancePolicy(ctx, p, l, rest[1], req.MaintenancePolicy)
	case "POST clusters/*:startIpRotation":
		var req gke.StartIPRotationRequest
		if err := codec.DecodeMessage(r, startRotationFields, pbMessage(&containerpb.StartIPRotationRequest{}), &req); err != nil {
			return nil, err
		}
		return e.StartIPRotation(ctx, p, l, rest[1], req.RotateCredentials)
	case "POST clusters/*:completeIpRotation":
		var req gke.CompleteIPRotationRequest
		if err := codec.DecodeMessage(r, completeRotationFields, pbMessage(&containerpb.CompleteIPRotationRequest{}), &req); err != nil {
			return nil, err
		}
		return e.CompleteIPRotation(ctx, p, l, rest[1])
	case "GET clusters/*/nodePools:":
		pools, err := e.ListNodePools(ctx, p, l, rest[1])
		if err != nil {
			return nil, err
		}
		return &gke.ListNodePoolsResponse{NodePools: pools}, nil
	case "POST clusters/*/nodePools:":
		var req gke.CreateNodePoolRequest
		if err := codec.DecodeMessage(r, createPoolFields, pbMessage(&containerpb.CreateNodePoolRequest{}), &req); err != nil {
			return nil, err
		}
		return e.CreateNodePool(ctx, p, l, rest[1], req.NodePool)
	case "GET clusters/*/nodePools/*:":
		return e.GetNodePool(ctx, p, l, rest[1], rest[3])
	case "DELETE clusters/*/nodePools/*:":
		return e.DeleteNodePool(ctx, p, l, rest[1], rest[3])
	case "POST clusters/*/nodePools/*:setSize":
		var req gke.SetNodePoolSizeRequest
		if err := codec.DecodeMessage(r, setSizeFields, pbMessage(&containerpb.SetNodePoolSizeRequest{}), &req); err != nil {
			return nil, err
		}
		return e.SetNodePoolSize(ctx, p, l, rest[1], rest[3], req.NodeCount)
	case "GET operations:":
		ops, err := e.ListOperations(ctx, p, l)
		if err != nil {
			return nil, err
		}
		return &gke.ListOperationsResponse{Operations: ops, MissingZones: []string{}}, nil
	case "GET operations/*:":
		return e.GetOperation(ctx, p, l, rest[1])
	case "POST operations/*:cancel":
		var req gke.CancelOperationRequest
		if err := codec.DecodeMessage(r, cancelFields, pbMessage(&containerpb.CancelOperationRequest{}), &req); err != nil {
			return nil, err
		}
		if err := e.CancelOperation(ctx, p, l, rest[1]); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
	return nil, status.Errorf(status.NotFound, "No such method: %s %s.", r.Method, r.URL.Path)
}

// endpointsGiven is what a request says of the control-plane endpoints
// with field presence: a false enablePublicEndpoint (no public endpoint)
// is then told from one left out.
type endpointsGiven struct {
	IPEndpointsConfig *struct {
		EnablePublicEndpoint *bool `json:"enablePublicEndpoint"`
	} `json:"ipEndpointsConfig"`
}

// mark records in cfg, the way Google's client types do, that
// enablePublicEndpoint was given.
func (g *endpointsGiven) mark(cfg *gke.ControlPlaneEndpointsConfig) {
	if g != nil && g.IPEndpointsConfig != nil && g.IPEndpointsConfig.EnablePublicEndpoint != nil && cfg != nil && cfg.IpEndpointsConfig != nil {
		cfg.IpEndpointsConfig.ForceSendFields = append(cfg.IpEndpointsConfig.ForceSendFields, "EnablePublicEndpoint")
	}
}

// pbMessage is the proto message of a request: its enums may come as
// numbers.
func pbMessage(m proto.Message) protoreflect.MessageDescriptor { return m.ProtoReflect().Descriptor() }

// shape replaces the names in a path with "*": clusters/demo/nodePools/x
// becomes clusters/*/nodePools/*.
func shape(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		if i%2 == 1 {
			out[i] = "*"
		} else {
			out[i] = s
		}
	}
	return strings.Join(out, "/")
}
