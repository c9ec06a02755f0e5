package engine

import (
	"context"
	"net/netip"
	"strings"
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
		for _, r := range e.peeringRoutes(ctx, network, best) {
			if best[network][r.Dst] == nil { // the network's own route wins
				routes = append(routes, r)
			}
		}
		if err := e.runtime.SetRoutes(network, routes); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("routes", "network", network, "err", err)
		}
	}
}

// peeringRoutes are what a network ("P/N") reaches through its active
// peerings: each peer's subnetwork ranges (primary and secondary), and its
// routes to instances where the peer exports custom routes and the network
// imports them. best holds the networks' own routes to instances.
func (e *Engine) peeringRoutes(ctx context.Context, network string, best map[string]map[netip.Prefix]*compute.Route) []vpcnet.Route {
	project, name, _ := strings.Cut(network, "/")
	n, err := e.vpc.GetNetwork(ctx, project, name)
	if err != nil {
		return nil
	}
	var out []vpcnet.Route
	for _, q := range n.Peerings {
		peerProject, peerName, ok := vpc.NetworkRef(project, q.Network)
		if q.State != "ACTIVE" || !ok {
			continue
		}
		peer := peerProject + "/" + peerName
		subs, err := e.vpc.ListSubnets(ctx, peerProject, "")
		if err != nil {
			continue
		}
		for _, s := range subs {
			if vpc.ResourceName(s.Network) != peerName {
				continue
			}
			ranges := []string{s.IpCidrRange}
			for _, sec := range s.SecondaryIpRanges {
				ranges = append(ranges, sec.IpCidrRange)
			}
			for _, r := range ranges {
				if p, err := netip.ParsePrefix(r); err == nil {
					out = append(out, vpcnet.Route{Dst: p.Masked(), Peer: peer})
				}
			}
		}
		if q.ImportCustomRoutes && e.exportsCustomRoutes(ctx, peerProject, peerName, n.SelfLink) {
			for dst := range best[peer] {
				out = append(out, vpcnet.Route{Dst: dst, Peer: peer})
			}
		}
	}
	return out
}

// exportsCustomRoutes says whether the peer network's peering back to
// selfLink exports its custom routes.
func (e *Engine) exportsCustomRoutes(ctx context.Context, project, name, selfLink string) bool {
	peer, err := e.vpc.GetNetwork(ctx, project, name)
	if err != nil {
		return false
	}
	for _, q := range peer.Peerings {
		if q.Network == selfLink {
			return q.ExportCustomRoutes
		}
	}
	return false
}
