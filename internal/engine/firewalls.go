package engine

import (
	"context"
	"time"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// followFirewalls keeps the firewall of every VPC network with clusters
// in it as its rules say: at once when rules change (the API call nudges
// it), and every interval for the rest (a cluster's new network).
func (e *Engine) followFirewalls(ctx context.Context, every time.Duration) {
	e.applyFirewalls(ctx)
	follow(ctx, every, e.firewallNudge, func() { e.applyFirewalls(ctx) })
}

// applyFirewalls gives the runtime each network's rules ("P/N").
func (e *Engine) applyFirewalls(ctx context.Context) {
	clusters, err := e.listClusters(ctx, "clusters/")
	if err != nil {
		return
	}
	rules := map[string][]firewall.Rule{}
	projects := map[string]bool{}
	for _, r := range clusters {
		rules[r.Project+"/"+vpc.ResourceName(r.Cluster.Network)] = nil
		projects[r.Project] = true
	}
	for project := range projects {
		fws, err := e.vpc.ListFirewalls(ctx, project)
		if err != nil {
			e.cfg.Logger.Warn("firewall rules", "project", project, "err", err)
			return // the networks keep what they enforce
		}
		for _, fw := range fws {
			key := project + "/" + vpc.ResourceName(fw.Network)
			if _, used := rules[key]; !used {
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
	for network, rs := range rules {
		if err := e.runtime.SetFirewall(network, rs); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("firewall", "network", network, "err", err)
		}
	}
}
