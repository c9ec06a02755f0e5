package engine

import (
	"context"
	"net/netip"
	"time"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/vpc"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// followDataplane keeps the firewall and the routes of every VPC network
// with clusters in it as its rules and routes say: at once when they
// change (the API call nudges it), and every interval for the rest (a
// cluster's new network).
func (e *Engine) followDataplane(ctx context.Context, every time.Duration) {
	apply := func() {
		networks, projects, err := e.networksInUse(ctx)
		if err != nil {
			return
		}
		e.applyFirewalls(ctx, networks, projects)
		e.applyRoutes(ctx, networks, projects)
	}
	apply()
	follow(ctx, every, e.dataplaneNudge, apply)
}

// networksInUse are the networks with clusters in them ("P/N"), and their
// projects.
func (e *Engine) networksInUse(ctx context.Context) (networks, projects map[string]bool, err error) {
	clusters, err := e.listClusters(ctx, "clusters/")
	if err != nil {
		return nil, nil, err
	}
	networks, projects = map[string]bool{}, map[string]bool{}
	for _, r := range clusters {
		networks[r.Project+"/"+vpc.ResourceName(r.Cluster.Network)] = true
		projects[r.Project] = true
	}
	return networks, projects, nil
}

// applyFirewalls gives the runtime each network's rules.
func (e *Engine) applyFirewalls(ctx context.Context, networks, projects map[string]bool) {
	rules := map[string][]firewall.Rule{}
	for project := range projects {
		fws, err := e.vpc.ListFirewalls(ctx, project)
		if err != nil {
			e.cfg.Logger.Warn("firewall rules", "project", project, "err", err)
			return // the networks keep what they enforce
		}
		for _, fw := range fws {
			key := project + "/" + vpc.ResourceName(fw.Network)
			if !networks[key] {
				continue
			}
			rule, ok, err := firewall.FromCompute(fw)
			if err != nil {
				e.cfg.Logger.Warn("firewall rule not enforced", "project", project, "rule", fw.Name, "err", err)
			}
			if ok && err == nil {
				rules[key] = append(rules[key], rule)
			}
		}
	}
	for network := range networks {
		if err := e.runtime.SetFirewall(network, rules[network]); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("firewall", "network", network, "err", err)
		}
	}
}

// applyRoutes gives the runtime each network's routes to instances: a
// routes-based cluster's routes to its nodes' pod ranges among them; of
// routes to one range, the one of lowest priority number. Routes to the
// internet gateway lead nowhere here; routes with tags, which would apply
// to some instances only, are not carried yet.
func (e *Engine) applyRoutes(ctx context.Context, networks, projects map[string]bool) {
	best := map[string]map[netip.Prefix]*compute.Route{}
	for project := range projects {
		rs, err := e.vpc.ListRoutes(ctx, project)
		if err != nil {
			e.cfg.Logger.Warn("routes", "project", project, "err", err)
			return // the networks keep what they carry
		}
		for _, r := range rs {
			key := project + "/" + vpc.ResourceName(r.Network)
			dst, err := netip.ParsePrefix(r.DestRange)
			if _, herr := netip.ParseAddr(r.NextHopIp); !networks[key] || err != nil || herr != nil || len(r.Tags) > 0 || !dst.Addr().Is4() {
				continue
			}
			if best[key] == nil {
				best[key] = map[netip.Prefix]*compute.Route{}
			}
			if old := best[key][dst]; old == nil || r.Priority < old.Priority {
				best[key][dst] = r
			}
		}
	}
	for network := range networks {
		var routes []vpcnet.Route
		for dst, r := range best[network] {
			routes = append(routes, vpcnet.Route{Dst: dst, NextHop: netip.MustParseAddr(r.NextHopIp)})
		}
		if err := e.runtime.SetRoutes(network, routes); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("routes", "network", network, "err", err)
		}
	}
}
