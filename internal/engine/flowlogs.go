package engine

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/flowlog"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// followFlowLogs writes the flow logs of the subnetworks that have them
// on, every interval: what crossed each connection of their networks
// since the report before.
func (e *Engine) followFlowLogs(ctx context.Context, every time.Duration) {
	reporters := map[string]*flowlog.Reporter{} // by network ("P/N")
	follow(ctx, every, nil, func() { e.reportFlows(ctx, reporters) })
}

func (e *Engine) reportFlows(ctx context.Context, reporters map[string]*flowlog.Reporter) {
	clusters, err := e.listClusters(ctx, "clusters/")
	if err != nil {
		return
	}
	byNetwork := map[string][]*ClusterRecord{}
	for _, r := range clusters {
		key := r.Project + "/" + vpc.ResourceName(r.Cluster.Network)
		byNetwork[key] = append(byNetwork[key], r)
	}
	now := e.cfg.Clock.Now()
	for key, records := range byNetwork {
		project, name, _ := strings.Cut(key, "/")
		n := flowlog.Network{Subnets: e.flowLogSubnets(ctx, project, name)}
		if len(n.Subnets) == 0 {
			// Nothing to log: no conntrack dump, and a fresh start when
			// flow logs come on.
			delete(reporters, key)
			continue
		}
		fs, nodes, err := e.runtime.Connections(key)
		if err != nil {
			e.cfg.Logger.Warn("flow logs", "network", key, "err", err)
			continue
		}
		rep := reporters[key]
		if rep == nil {
			rep = flowlog.NewReporter(now)
			reporters[key] = rep
		}
		n.Instances = instancesOf(records, nodes)
		if entries := rep.Report(now, n, fs); len(entries) > 0 {
			if err := e.logs.Write(ctx, project, entries...); err != nil {
				e.cfg.Logger.Warn("flow logs", "network", key, "err", err)
			}
		}
	}
}

// flowLogSubnets are the network's subnetworks with flow logs on, by name.
func (e *Engine) flowLogSubnets(ctx context.Context, project, network string) map[string]flowlog.Subnet {
	subs, err := e.vpc.ListSubnets(ctx, project, "")
	if err != nil {
		return nil
	}
	out := map[string]flowlog.Subnet{}
	for _, s := range subs {
		if vpc.ResourceName(s.Network) != network || !s.EnableFlowLogs || s.LogConfig == nil {
			continue
		}
		r, _ := netip.ParsePrefix(s.IpCidrRange)
		out[s.Name] = flowlog.Subnet{Project: project, Region: vpc.ResourceName(s.Region), Name: s.Name, ID: strconv.FormatUint(s.Id, 10),
			Network: network, Range: r, Sampling: s.LogConfig.FlowSampling, Metadata: s.LogConfig.Metadata != "EXCLUDE_ALL_METADATA"}
	}
	return out
}

// instancesOf are the network's real nodes as flow logs name them: where
// each is, and its cluster.
func instancesOf(records []*ClusterRecord, nodes []firewall.Instance) []flowlog.Instance {
	type place struct {
		r    *ClusterRecord
		zone string
	}
	where := map[string]place{}
	for _, r := range records {
		for _, p := range r.Cluster.NodePools {
			for i, n := range r.Nodes[p.Name] {
				where[n.Name] = place{r, nodeZone(p.Locations, i)}
			}
		}
	}
	var out []flowlog.Instance
	for _, n := range nodes {
		pl, ok := where[n.Name]
		if !ok {
			continue
		}
		out = append(out, flowlog.Instance{Project: pl.r.Project, Zone: pl.zone, Name: n.Name, IP: n.IP, Ranges: n.Ranges,
			Subnet: vpc.ResourceName(pl.r.Cluster.Subnetwork), VPC: vpc.ResourceName(pl.r.Cluster.Network),
			Cluster: pl.r.Cluster.Name, ClusterLocation: pl.r.Location})
	}
	return out
}
