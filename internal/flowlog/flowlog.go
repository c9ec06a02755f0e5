// Package flowlog makes VPC flow log entries, as Compute Engine writes
// them (compute.googleapis.com%2Fvpc_flows), out of the connections that
// cross a network: each report says what crossed each connection, each
// way, since the report before. A connection is reported by its source
// instance (reporter SRC) and by its destination (DEST), each where its
// subnetwork has flow logs on.
//
// flowSampling keeps that share of the entries, exactly and without
// chance: each subnetwork carries a running remainder, and the entries of
// one connection come one after another (SRC then DEST), so that at any
// rate of one half or more each direction of a connection that both ends
// report is logged by at least one of them.
package flowlog

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/kubeyard/kubeyard/internal/flows"
	"github.com/kubeyard/kubeyard/internal/logging"
)

// LogID is the flow logs' log, URL-encoded as in logName.
const LogID = "compute.googleapis.com%2Fvpc_flows"

// Subnet is a subnetwork with flow logs on.
type Subnet struct {
	Project, Region, Name, ID, Network string
	Range                              netip.Prefix
	// Sampling is the share of entries kept (0 to 1); Metadata says
	// whether instance, VPC and GKE details are included.
	Sampling float64
	Metadata bool
}

// Instance is a VM on the network: its address and alias ranges (a
// node's pod range), where it is, and the GKE cluster it is a node of.
type Instance struct {
	Project, Zone, Name string
	IP                  netip.Addr
	Ranges              []netip.Prefix
	// Subnet is the subnetwork's name; VPC the network's.
	Subnet, VPC string
	// Cluster and ClusterLocation are the GKE cluster's, if any.
	Cluster, ClusterLocation string
}

func (in *Instance) has(a netip.Addr) bool {
	if in.IP == a {
		return true
	}
	for _, r := range in.Ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// Pod names a pod by its address, if the address is one.
type Pod struct{ Name, Namespace string }

// Network is what a report needs of a network besides its connections.
type Network struct {
	Instances []Instance
	// Subnets with flow logs on, by name.
	Subnets map[string]Subnet
	// Pod, if set, names the pod at an address.
	Pod func(netip.Addr) (Pod, bool)
}

// Reporter remembers what it reported of each connection. It is its own
// cursor: stored (as JSON) with the entries of each report, it lets the
// next engine go on where this one stopped, the connections' counters
// still in the kernel, without losing or repeating a byte.
type Reporter struct {
	Reported map[string]Counts `json:"reported"`
	// Remainders carry each subnetwork's sampling over.
	Remainders map[string]float64 `json:"remainders"`
	Last       time.Time          `json:"last"`
}

// Counts are a connection's counters as last reported.
type Counts struct {
	SentBytes      uint64 `json:"sentBytes"`
	SentPackets    uint64 `json:"sentPackets"`
	RepliedBytes   uint64 `json:"repliedBytes"`
	RepliedPackets uint64 `json:"repliedPackets"`
}

// NewReporter returns a Reporter that reports connections from now on.
func NewReporter(start time.Time) *Reporter {
	return &Reporter{Reported: map[string]Counts{}, Remainders: map[string]float64{}, Last: start}
}

func key(f flows.Flow) string {
	return fmt.Sprintf("%d/%d/%s/%s", f.ID, f.Protocol, f.Src, f.Dst)
}

// Report returns the entries of what crossed the connections since the
// last report (at now), and forgets connections that are gone.
func (r *Reporter) Report(now time.Time, n Network, fs []flows.Flow) []logging.Entry {
	sort.Slice(fs, func(i, j int) bool { return key(fs[i]) < key(fs[j]) })
	live := map[string]bool{}
	var out []logging.Entry
	for _, f := range fs {
		k := key(f)
		live[k] = true
		before := r.Reported[k]
		r.Reported[k] = Counts{f.SentBytes, f.SentPackets, f.RepliedBytes, f.RepliedPackets}
		src, dst := n.instance(f.Src.Addr()), n.instance(f.Dst.Addr())
		if src == nil && dst == nil {
			continue
		}
		directions := []struct {
			from, to       netip.AddrPort
			fromIn, toIn   *Instance
			bytes, packets uint64
		}{
			{f.Src, f.Dst, src, dst, f.SentBytes - before.SentBytes, f.SentPackets - before.SentPackets},
			{f.Dst, f.Src, dst, src, f.RepliedBytes - before.RepliedBytes, f.RepliedPackets - before.RepliedPackets},
		}
		for _, d := range directions {
			if d.packets == 0 {
				continue
			}
			for _, reporter := range []string{"SRC", "DEST"} {
				at := d.fromIn
				if reporter == "DEST" {
					at = d.toIn
				}
				if at == nil {
					continue
				}
				sub, on := n.Subnets[at.Subnet]
				if !on || !r.sampled(sub) {
					continue
				}
				start := r.Last
				if f.Start.After(start) {
					start = f.Start
				}
				out = append(out, entry(sub, at, reporter, f.Protocol, d.from, d.to, d.fromIn, d.toIn, d.bytes, d.packets, start, now, n.Pod))
			}
		}
	}
	for k := range r.Reported {
		if !live[k] {
			delete(r.Reported, k)
		}
	}
	r.Last = now
	return out
}

// sampled keeps the subnetwork's share of its entries.
func (r *Reporter) sampled(s Subnet) bool {
	k := s.Project + "/" + s.Region + "/" + s.Name
	acc := r.Remainders[k] + s.Sampling
	keep := acc >= 1-1e-9
	if keep {
		acc--
	}
	r.Remainders[k] = acc
	return keep
}

func (n Network) instance(a netip.Addr) *Instance {
	for i := range n.Instances {
		if n.Instances[i].has(a) {
			return &n.Instances[i]
		}
	}
	return nil
}

// entry is one flow log entry, jsonPayload as Compute Engine writes it.
func entry(sub Subnet, at *Instance, reporter string, proto uint8, from, to netip.AddrPort, fromIn, toIn *Instance,
	bytes, packets uint64, start, end time.Time, pod func(netip.Addr) (Pod, bool)) logging.Entry {
	payload := map[string]any{
		"connection": map[string]any{"src_ip": from.Addr().String(), "src_port": from.Port(),
			"dest_ip": to.Addr().String(), "dest_port": to.Port(), "protocol": proto},
		"bytes_sent": strconv.FormatUint(bytes, 10), "packets_sent": strconv.FormatUint(packets, 10),
		"start_time": start.UTC().Format(time.RFC3339Nano), "end_time": end.UTC().Format(time.RFC3339Nano),
		"reporter": reporter,
	}
	if sub.Metadata {
		for side, in := range map[string]*Instance{"src": fromIn, "dest": toIn} {
			if in == nil {
				continue
			}
			addr := from.Addr()
			if side == "dest" {
				addr = to.Addr()
			}
			region := in.Zone
			if i := len(region) - 2; i > 0 {
				region = region[:i]
			}
			payload[side+"_instance"] = map[string]any{"project_id": in.Project, "region": region, "vm_name": in.Name, "zone": in.Zone}
			payload[side+"_vpc"] = map[string]any{"project_id": in.Project, "vpc_name": in.VPC, "subnetwork_name": in.Subnet}
			if in.Cluster != "" {
				gke := map[string]any{"cluster": map[string]any{"cluster_name": in.Cluster, "cluster_location": in.ClusterLocation}}
				if pod != nil {
					if p, ok := pod(addr); ok {
						gke["pod"] = map[string]any{"pod_name": p.Name, "pod_namespace": p.Namespace}
					}
				}
				payload[side+"_gke_details"] = gke
			}
		}
	}
	return logging.Entry{
		LogName: "projects/" + sub.Project + "/logs/" + LogID,
		Resource: logging.Resource{Type: "gce_subnetwork", Labels: map[string]string{
			"location": at.Zone, "project_id": sub.Project, "subnetwork_id": sub.ID, "subnetwork_name": sub.Name}},
		Timestamp: end, Severity: "DEFAULT", JSONPayload: payload,
	}
}
