package compute

import (
	"context"
	"net/http"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/api/codec"
)

// LoadBalancers are the load balancers GKE made for the clusters'
// LoadBalancer Services, read only (the Service is what users change):
// forwarding rules, with target pools (external) and regional backend
// services (internal).
type LoadBalancers interface {
	ListForwardingRules(ctx context.Context, project, region string) ([]*compute.ForwardingRule, error)
	GetForwardingRule(ctx context.Context, project, region, name string) (*compute.ForwardingRule, error)
	ListTargetPools(ctx context.Context, project, region string) ([]*compute.TargetPool, error)
	GetTargetPool(ctx context.Context, project, region, name string) (*compute.TargetPool, error)
	ListBackendServices(ctx context.Context, project, region string) ([]*compute.BackendService, error)
	GetBackendService(ctx context.Context, project, region, name string) (*compute.BackendService, error)
}

// registerLoadBalancers adds forwardingRules, targetPools and
// backendServices: get, list and aggregated list in regions; the global
// lists are empty (GKE's Service load balancers are regional).
func registerLoadBalancers(mux *http.ServeMux, lbs LoadBalancers) {
	h := func(pattern string, f func(r *http.Request) (any, error)) { codec.HandleJSON(mux, pattern, f) }
	p := func(r *http.Request) string { return r.PathValue("project") }
	region := func(r *http.Request) string { return r.PathValue("region") }

	h("GET "+root+"/regions/{region}/forwardingRules", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.ForwardingRule, error) {
			return lbs.ListForwardingRules(r.Context(), p(r), region(r))
		})
		return &compute.ForwardingRuleList{Kind: "compute#forwardingRuleList", Items: items}, err
	})
	h("GET "+root+"/global/forwardingRules", func(r *http.Request) (any, error) {
		return &compute.ForwardingRuleList{Kind: "compute#forwardingRuleList", Items: []*compute.ForwardingRule{}}, nil
	})
	h("GET "+root+"/aggregated/forwardingRules", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.ForwardingRule, error) { return lbs.ListForwardingRules(r.Context(), p(r), "") })
		if err != nil {
			return nil, err
		}
		out := &compute.ForwardingRuleAggregatedList{Kind: "compute#forwardingRuleAggregatedList", Items: map[string]compute.ForwardingRulesScopedList{}}
		for scope, rules := range byRegion(items, func(f *compute.ForwardingRule) string { return f.Region }) {
			out.Items[scope] = compute.ForwardingRulesScopedList{ForwardingRules: rules}
		}
		return out, nil
	})
	h("GET "+root+"/regions/{region}/forwardingRules/{name}", func(r *http.Request) (any, error) {
		return lbs.GetForwardingRule(r.Context(), p(r), region(r), r.PathValue("name"))
	})

	h("GET "+root+"/regions/{region}/targetPools", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.TargetPool, error) { return lbs.ListTargetPools(r.Context(), p(r), region(r)) })
		return &compute.TargetPoolList{Kind: "compute#targetPoolList", Items: items}, err
	})
	h("GET "+root+"/aggregated/targetPools", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.TargetPool, error) { return lbs.ListTargetPools(r.Context(), p(r), "") })
		if err != nil {
			return nil, err
		}
		out := &compute.TargetPoolAggregatedList{Kind: "compute#targetPoolAggregatedList", Items: map[string]compute.TargetPoolsScopedList{}}
		for scope, pools := range byRegion(items, func(t *compute.TargetPool) string { return t.Region }) {
			out.Items[scope] = compute.TargetPoolsScopedList{TargetPools: pools}
		}
		return out, nil
	})
	h("GET "+root+"/regions/{region}/targetPools/{name}", func(r *http.Request) (any, error) {
		return lbs.GetTargetPool(r.Context(), p(r), region(r), r.PathValue("name"))
	})

	h("GET "+root+"/regions/{region}/backendServices", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.BackendService, error) {
			return lbs.ListBackendServices(r.Context(), p(r), region(r))
		})
		return &compute.BackendServiceList{Kind: "compute#backendServiceList", Items: items}, err
	})
	h("GET "+root+"/global/backendServices", func(r *http.Request) (any, error) {
		return &compute.BackendServiceList{Kind: "compute#backendServiceList", Items: []*compute.BackendService{}}, nil
	})
	h("GET "+root+"/aggregated/backendServices", func(r *http.Request) (any, error) {
		items, err := filtered(r, func() ([]*compute.BackendService, error) { return lbs.ListBackendServices(r.Context(), p(r), "") })
		if err != nil {
			return nil, err
		}
		out := &compute.BackendServiceAggregatedList{Kind: "compute#backendServiceAggregatedList", Items: map[string]compute.BackendServicesScopedList{}}
		for scope, services := range byRegion(items, func(b *compute.BackendService) string { return b.Region }) {
			out.Items[scope] = compute.BackendServicesScopedList{BackendServices: services}
		}
		return out, nil
	})
	h("GET "+root+"/regions/{region}/backendServices/{name}", func(r *http.Request) (any, error) {
		return lbs.GetBackendService(r.Context(), p(r), region(r), r.PathValue("name"))
	})
}
