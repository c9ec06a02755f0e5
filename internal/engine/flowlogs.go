package engine

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/flowlog"
	"github.com/kubeyard/kubeyard/internal/store"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// followFlowLogs writes the flow logs of the subnetworks that have them
// on, every interval: what crossed each connection of their networks
// since the report before.
func (e *Engine) followFlowLogs(ctx context.Context, every time.Duration) {
	follow(ctx, every, nil, func() { e.reportFlows(ctx) })
}

// flowCursorKey is where a network's ("P/N") reporter is stored, with the
// entries of its last report.
func flowCursorKey(network string) string { return "flowlogs/" + network }

// reportFlows writes one report of every network with flow logs on. Each
// network's reporter is stored in the transaction that writes its entries,
// so that an engine killed at any point leaves the next one to report
// exactly what was not reported yet.
func (e *Engine) reportFlows(ctx context.Context) {
	e.flowMu.Lock()
	defer e.flowMu.Unlock()
	if e.flowReporters == nil {
		e.flowReporters = map[string]*flowlog.Reporter{}
	}
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
		subnets, flowLogs := e.subnetsOf(ctx, project, name)
		n := flowlog.Network{Subnets: subnets, Rules: e.loggedRules(ctx, project, name)}
		if !flowLogs && len(n.Rules) == 0 {
			// Nothing to log: no conntrack dump, and a fresh start when
			// flow logs come on.
			if _, ok := e.flowReporters[key]; ok {
				if err := e.store.Commit(ctx, store.Write{Key: flowCursorKey(key), Revision: store.Any}); err != nil {
					continue
				}
				delete(e.flowReporters, key)
			}
			continue
		}
		fs, nodes, err := e.runtime.Connections(key)
		var hits []firewall.Hit
		if err == nil && len(n.Rules) > 0 {
			hits, err = e.runtime.FirewallHits(key)
		}
		if err != nil {
			e.cfg.Logger.Warn("flow logs", "network", key, "err", err)
			continue
		}
		rep, err := e.flowReporter(ctx, key, now)
		if err != nil {
			e.cfg.Logger.Warn("flow logs", "network", key, "err", err)
			continue
		}
		n.Instances = instancesOf(records, nodes)
		n.Pod = e.podsOf(ctx, records)
		entries := append(rep.Report(now, n, fs), rep.Firewall(now, n, hits)...)
		if len(entries) == 0 {
			// Nothing told: the stored reporter still says what was, and
			// an idle network writes nothing every 5 s.
			continue
		}
		if err := e.logs.WriteWith(ctx, project, []store.Write{{Key: flowCursorKey(key), Value: rep, Revision: store.Any}}, entries...); err != nil {
			// Not written: the stored reporter is where to go on from.
			delete(e.flowReporters, key)
			e.cfg.Logger.Warn("flow logs", "network", key, "err", err)
		}
	}
}

// flowReporter is the network's reporter: the one in use, the one an
// earlier engine stored, or a new one that reports from now on.
func (e *Engine) flowReporter(ctx context.Context, network string, now time.Time) (*flowlog.Reporter, error) {
	if rep := e.flowReporters[network]; rep != nil {
		return rep, nil
	}
	rep := flowlog.NewReporter(now)
	if _, err := e.store.Get(ctx, flowCursorKey(network), rep); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	e.flowReporters[network] = rep
	return rep, nil
}

// subnetsOf are the network's subnetworks (flowlog.SubnetKey), with their flow log
// settings; flowLogs says whether one has flow logs on.
func (e *Engine) subnetsOf(ctx context.Context, project, network string) (subnets map[string]flowlog.Subnet, flowLogs bool) {
	subs, err := e.vpc.ListSubnets(ctx, project, "")
	if err != nil {
		return nil, false
	}
	out := map[string]flowlog.Subnet{}
	for _, s := range subs {
		if vpc.ResourceName(s.Network) != network {
			continue
		}
		r, _ := netip.ParsePrefix(s.IpCidrRange)
		sub := flowlog.Subnet{Project: project, Region: vpc.ResourceName(s.Region), Name: s.Name, ID: strconv.FormatUint(s.Id, 10), Network: network, Range: r}
		if c := s.LogConfig; s.EnableFlowLogs && c != nil {
			sub.FlowLogs, sub.Sampling, sub.Metadata, sub.Interval = true, c.FlowSampling, c.Metadata != "EXCLUDE_ALL_METADATA", flowlog.Intervals[c.AggregationInterval]
			flowLogs = true
		}
		out[flowlog.SubnetKey(sub.Region, s.Name)] = sub
	}
	return out, flowLogs
}

// loggedRules are the network's enabled firewall rules with logging on,
// by firewall.RuleID.
func (e *Engine) loggedRules(ctx context.Context, project, network string) map[uint32]flowlog.LoggedRule {
	fws, err := e.vpc.ListFirewalls(ctx, project)
	if err != nil {
		return nil
	}
	out := map[uint32]flowlog.LoggedRule{}
	for _, fw := range fws {
		if vpc.ResourceName(fw.Network) != network || fw.Disabled || fw.LogConfig == nil || !fw.LogConfig.Enable {
			continue
		}
		r := flowlog.LoggedRule{Name: fw.Name, VPC: network, Priority: fw.Priority, Deny: len(fw.Denied) > 0, Ingress: fw.Direction != "EGRESS",
			Ranges: fw.SourceRanges, SourceTags: fw.SourceTags, TargetTags: fw.TargetTags, ExcludeMetadata: fw.LogConfig.Metadata == "EXCLUDE_ALL_METADATA"}
		if !r.Ingress {
			r.Ranges = fw.DestinationRanges
		}
		for _, a := range fw.Allowed {
			r.Protocols = append(r.Protocols, flowlog.RuleProtocol{Protocol: a.IPProtocol, Ports: a.Ports})
		}
		for _, d := range fw.Denied {
			r.Protocols = append(r.Protocols, flowlog.RuleProtocol{Protocol: d.IPProtocol, Ports: d.Ports})
		}
		out[firewall.RuleID(fw.Name)] = r
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

// podsOf names the pods of the clusters by address, for the entries'
// gke_details: listed the first time an entry asks, so that a report with
// nothing to tell lists nothing. A cluster whose pods cannot be listed now
// goes without.
func (e *Engine) podsOf(ctx context.Context, records []*ClusterRecord) func(netip.Addr) (flowlog.Pod, bool) {
	var pods map[netip.Addr]flowlog.Pod
	return func(a netip.Addr) (flowlog.Pod, bool) {
		if pods == nil {
			pods = map[netip.Addr]flowlog.Pod{}
			for _, r := range records {
				if r.Cluster.Status != "RUNNING" && r.Cluster.Status != "RECONCILING" {
					continue
				}
				named, err := e.runtime.PodAddresses(ctx, e.spec(r))
				if err != nil {
					continue
				}
				for a, p := range named {
					pods[a] = flowlog.Pod{Name: p.Name, Namespace: p.Namespace}
				}
			}
		}
		p, ok := pods[a]
		return p, ok
	}
}
