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
//
// It also makes the entries of firewall rules logging
// (compute.googleapis.com%2Ffirewall, firewall.go): a connection a logging
// rule decided, once.
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

// Subnet is a subnetwork, with its flow log settings.
type Subnet struct {
	// FlowLogs says whether it has flow logs on; the rest is their
	// settings.
	FlowLogs                           bool
	Project, Region, Name, ID, Network string
	Range                              netip.Prefix
	// Sampling is the share of entries kept (0 to 1); Metadata says
	// whether instance, VPC and GKE details are included.
	Sampling float64
	Metadata bool
	// Interval is the aggregation interval (none: 5 s, the shortest).
	Interval time.Duration
}

func (s Subnet) key() string { return s.Project + "/" + s.Region + "/" + s.Name }

func (s Subnet) interval() time.Duration {
	return max(s.Interval, 5*time.Second)
}

// Intervals are the aggregation intervals Compute Engine offers, by name.
var Intervals = map[string]time.Duration{
	"INTERVAL_5_SEC": 5 * time.Second, "INTERVAL_30_SEC": 30 * time.Second, "INTERVAL_1_MIN": time.Minute,
	"INTERVAL_5_MIN": 5 * time.Minute, "INTERVAL_10_MIN": 10 * time.Minute, "INTERVAL_15_MIN": 15 * time.Minute,
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
	// Subnets are the network's subnetworks, by region and name
	// ("us-central1/default": SubnetKey).
	Subnets map[string]Subnet
	// Rules are the firewall rules with logging on, by firewall.RuleID.
	Rules map[uint32]LoggedRule
	// Pod, if set, names the pod at an address.
	Pod func(netip.Addr) (Pod, bool)
}

// Reporter remembers what it reported of each connection. It is its own
// cursor: stored (as JSON) with the entries of each report, it lets the
// next engine go on where this one stopped, the connections' counters
// still in the kernel, without losing or repeating a byte.
type Reporter struct {
	// Reported are a connection's counters as last reported by one of its
	// ends, by connection and instance ("key@instance").
	Reported map[string]Counts `json:"reported"`
	// Seen are the connections as last seen, kept after they are gone
	// until each end has reported the rest.
	Seen map[string]flows.Flow `json:"seen"`
	// Remainders carry each subnetwork's sampling over.
	Remainders map[string]float64 `json:"remainders"`
	// Intervals are when each subnetwork's aggregation interval began (its
	// last report).
	Intervals map[string]time.Time `json:"intervals"`
	// Decided are the connections firewall rules logging reported (see
	// Firewall), until they leave the rules' log.
	Decided map[string]bool `json:"decided"`
	// Last is when the reporter last looked.
	Last time.Time `json:"last"`
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
	r := &Reporter{Last: start}
	r.init()
	return r
}

// init makes what a stored reporter may lack.
func (r *Reporter) init() {
	if r.Reported == nil {
		r.Reported = map[string]Counts{}
	}
	if r.Seen == nil {
		r.Seen = map[string]flows.Flow{}
	}
	if r.Remainders == nil {
		r.Remainders = map[string]float64{}
	}
	if r.Intervals == nil {
		r.Intervals = map[string]time.Time{}
	}
	if r.Decided == nil {
		r.Decided = map[string]bool{}
	}
}

func key(f flows.Flow) string {
	return fmt.Sprintf("%d/%d/%s/%s", f.ID, f.Protocol, f.Src, f.Dst)
}

// slack lets a report a little early count as the end of an aggregation
// interval: reports come every interval of the shortest (5 s), give or
// take.
const slack = time.Second

// Report returns the entries of what crossed the connections since each
// end's subnetwork last reported, for the subnetworks whose aggregation
// interval ends at now; connections that are gone are forgotten once
// both ends have told the rest.
func (r *Reporter) Report(now time.Time, n Network, fs []flows.Flow) []logging.Entry {
	r.init()
	live := map[string]bool{}
	for _, f := range fs {
		k := key(f)
		live[k] = true
		r.Seen[k] = f
	}
	keys := make([]string, 0, len(r.Seen))
	for k := range r.Seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	due := map[string]bool{} // by subnetwork, decided once per report
	isDue := func(s Subnet) bool {
		k := s.key()
		if d, ok := due[k]; ok {
			return d
		}
		// A subnetwork new to the reporter reports at once (what crossed
		// since the reporter began), then at the end of each interval.
		began, ok := r.Intervals[k]
		if !ok {
			r.Intervals[k] = r.Last
		}
		due[k] = !ok || now.Sub(began)+slack >= s.interval()
		return due[k]
	}
	var out []logging.Entry
	for _, k := range keys {
		f := r.Seen[k]
		src, dst := n.instance(f.Src.Addr()), n.instance(f.Dst.Addr())
		// Each end reports if its subnetwork has flow logs on and its
		// interval ends now.
		type end struct {
			sub    Subnet
			due    bool
			before Counts
		}
		ends := map[*Instance]*end{}
		pending := false
		for _, in := range []*Instance{src, dst} {
			if in == nil || ends[in] != nil {
				continue
			}
			sub, on := n.Subnets[in.subnet()]
			if !on || !sub.FlowLogs {
				continue
			}
			e := &end{sub: sub, due: isDue(sub), before: r.Reported[k+"@"+in.Name]}
			ends[in] = e
			pending = pending || !e.due
		}
		directions := []struct {
			from, to       netip.AddrPort
			fromIn, toIn   *Instance
			bytes, packets func(Counts) uint64
			nowB, nowP     uint64
		}{
			{f.Src, f.Dst, src, dst, func(c Counts) uint64 { return c.SentBytes }, func(c Counts) uint64 { return c.SentPackets }, f.SentBytes, f.SentPackets},
			{f.Dst, f.Src, dst, src, func(c Counts) uint64 { return c.RepliedBytes }, func(c Counts) uint64 { return c.RepliedPackets }, f.RepliedBytes, f.RepliedPackets},
		}
		// Direction by direction, SRC then DEST: see flowSampling above.
		for _, d := range directions {
			for _, reporter := range []string{"SRC", "DEST"} {
				at := d.fromIn
				if reporter == "DEST" {
					at = d.toIn
				}
				e := ends[at]
				if at == nil || e == nil || !e.due {
					continue
				}
				packets := d.nowP - d.packets(e.before)
				if packets == 0 || !r.sampled(e.sub) {
					continue
				}
				start := r.Intervals[e.sub.key()]
				if f.Start.After(start) {
					start = f.Start
				}
				out = append(out, entry(e.sub, at, reporter, f.Protocol, d.from, d.to, d.fromIn, d.toIn, d.nowB-d.bytes(e.before), packets, start, now, n.Pod))
			}
		}
		for in, e := range ends {
			if e.due {
				r.Reported[k+"@"+in.Name] = Counts{f.SentBytes, f.SentPackets, f.RepliedBytes, f.RepliedPackets}
			}
		}
		if !live[k] && !pending {
			delete(r.Seen, k)
			for _, in := range []*Instance{src, dst} {
				if in != nil {
					delete(r.Reported, k+"@"+in.Name)
				}
			}
		}
	}
	for k, d := range due {
		if d {
			r.Intervals[k] = now
		}
	}
	r.Last = now
	return out
}

// sampled keeps the subnetwork's share of its entries.
func (r *Reporter) sampled(s Subnet) bool {
	k := s.key()
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
			payload[side+"_instance"], payload[side+"_vpc"] = in.details(), in.vpcDetails()
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
	return logging.Entry{LogName: "projects/" + sub.Project + "/logs/" + LogID, Resource: sub.resource(at),
		Timestamp: end, Severity: "DEFAULT", JSONPayload: payload}
}

// resource is the subnetwork as the entries of an instance in it name it.
func (s Subnet) resource(at *Instance) logging.Resource {
	return logging.Resource{Type: "gce_subnetwork", Labels: map[string]string{
		"location": at.Zone, "project_id": s.Project, "subnetwork_id": s.ID, "subnetwork_name": s.Name}}
}

// details and vpcDetails are the instance as entries describe it.
func (in *Instance) details() map[string]any {
	return map[string]any{"project_id": in.Project, "region": in.region(), "vm_name": in.Name, "zone": in.Zone}
}

// SubnetKey is how Network.Subnets names a subnetwork.
func SubnetKey(region, name string) string { return region + "/" + name }

// subnet is the instance's subnetwork as Network.Subnets names it.
func (in *Instance) subnet() string { return SubnetKey(in.region(), in.Subnet) }

func (in *Instance) region() string {
	if i := len(in.Zone) - 2; i > 0 {
		return in.Zone[:i]
	}
	return in.Zone
}

func (in *Instance) vpcDetails() map[string]any {
	return map[string]any{"project_id": in.Project, "vpc_name": in.VPC, "subnetwork_name": in.Subnet}
}
