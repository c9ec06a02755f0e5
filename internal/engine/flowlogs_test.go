package engine

import (
	"context"
	"encoding/json"
	"net/netip"
	"strconv"
	"testing"
	"time"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/flows"
	"github.com/kubeyard/kubeyard/internal/logging"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// A connection's bytes are reported once each, however engines come and
// go: the next engine goes on from the reporter the last one stored with
// its entries. The entries name the pod at each end.
func TestFlowLogsPickUpAfterACrash(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("fl", 1)
	node := g.cluster("fl").Nodes["default-pool"][0]
	on, all := true, 1.0
	if _, err := g.e.VPC().PatchSubnet(ctx, project, "us-central1", "default", vpc.SubnetPatch{EnableFlowLogs: &on, LogConfig: &compute.SubnetworkLogConfig{Enable: true, FlowSampling: all}}); err != nil {
		t.Fatal(err)
	}
	podIP := netip.MustParseAddr("10.0.0.2")
	network := project + "/default"
	conn := func(sent uint64) {
		g.rt.SetConnections(network, []flows.Flow{{ID: 7, Protocol: 6,
			Src: netip.AddrPortFrom(podIP, 40000), Dst: netip.MustParseAddrPort("10.128.0.200:8080"),
			SentBytes: sent, SentPackets: sent / 50, RepliedBytes: 60, RepliedPackets: 1}},
			[]firewall.Instance{{Name: node.Name, IP: netip.MustParseAddr(node.InternalIP), Ranges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}})
	}
	g.rt.SetPods("fl", map[netip.Addr]cluster.PodName{podIP: {Namespace: "default", Name: "pod-1"}})
	// sent sums what the entries say pod-1 sent.
	sent := func() (total int) {
		f, _ := logging.ParseFilter(`jsonPayload.connection.src_ip="10.0.0.2" AND jsonPayload.reporter="SRC"`)
		raw, _, err := g.e.Logs().List(logging.Query{Projects: []string{project}, Filter: f, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range raw {
			var e struct {
				JSONPayload struct {
					BytesSent     string `json:"bytes_sent"`
					SrcGKEDetails struct {
						Pod struct {
							Name string `json:"pod_name"`
						} `json:"pod"`
					} `json:"src_gke_details"`
				} `json:"jsonPayload"`
			}
			json.Unmarshal(r, &e)
			if e.JSONPayload.SrcGKEDetails.Pod.Name != "pod-1" {
				t.Errorf("an entry names the pod %q: %s", e.JSONPayload.SrcGKEDetails.Pod.Name, r)
			}
			n, _ := strconv.Atoi(e.JSONPayload.BytesSent)
			total += n
		}
		return total
	}
	// report makes a report at the end of the next 5 s interval.
	report := func() {
		t.Helper()
		if _, err := g.e.AdvanceClock(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		g.e.reportFlows(ctx)
	}
	conn(100)
	g.e.reportFlows(ctx)
	report()
	report()
	if got := sent(); got != 100 {
		t.Fatalf("pod-1 sent 100 bytes; the entries say %d", got)
	}
	g.restart()
	report()
	if got := sent(); got != 100 {
		t.Errorf("after a restart, with nothing new: the entries say %d bytes", got)
	}
	conn(250)
	report()
	if got := sent(); got != 250 {
		t.Errorf("pod-1 sent 250 bytes in all; the entries say %d", got)
	}
}

// A firewall rule with logging on has each connection it decided written
// once to compute.googleapis.com%2Ffirewall, with flow logs off, across
// engines.
func TestFirewallLogging(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("fw", 1)
	node := g.cluster("fw").Nodes["default-pool"][0]
	fw := &compute.Firewall{Name: "deny-8080", Network: "default", Priority: 100, Denied: []*compute.FirewallDenied{{IPProtocol: "tcp", Ports: []string{"8080"}}},
		SourceRanges: []string{"10.128.0.200/32"}, LogConfig: &compute.FirewallLogConfig{Enable: true}}
	if _, err := g.e.VPC().InsertFirewall(ctx, project, fw, nil); err != nil {
		t.Fatal(err)
	}
	network := project + "/default"
	// A connection too: with no subnetwork's flow logs on, no flow entry.
	g.rt.SetConnections(network, []flows.Flow{{ID: 9, Protocol: 6, Src: netip.MustParseAddrPort(node.InternalIP + ":40000"),
		Dst: netip.MustParseAddrPort("10.128.0.201:80"), SentBytes: 100, SentPackets: 2}},
		[]firewall.Instance{{Name: node.Name, IP: netip.MustParseAddr(node.InternalIP)}})
	g.rt.SetFirewallHits(network, []firewall.Hit{{Rule: firewall.RuleID("deny-8080"), Protocol: 6,
		Src: netip.MustParseAddrPort("10.128.0.200:40000"), Dst: netip.AddrPortFrom(netip.MustParseAddr(node.InternalIP), 8080)}})
	logged := func() []string {
		f, _ := logging.ParseFilter(`logName="projects/p/logs/compute.googleapis.com%2Ffirewall"`)
		raw, _, err := g.e.Logs().List(logging.Query{Projects: []string{project}, Filter: f, PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range raw {
			var e struct {
				JSONPayload struct {
					Disposition string `json:"disposition"`
					Instance    struct {
						VMName string `json:"vm_name"`
					} `json:"instance"`
				} `json:"jsonPayload"`
			}
			json.Unmarshal(r, &e)
			out = append(out, e.JSONPayload.Disposition+" at "+e.JSONPayload.Instance.VMName)
		}
		return out
	}
	g.e.reportFlows(ctx)
	g.e.reportFlows(ctx)
	g.restart()
	g.e.reportFlows(ctx)
	if got := logged(); len(got) != 1 || got[0] != "DENIED at "+node.Name {
		t.Errorf("firewall log: %v", got)
	}
	f, _ := logging.ParseFilter(`logName="projects/p/logs/compute.googleapis.com%2Fvpc_flows"`)
	if raw, _, _ := g.e.Logs().List(logging.Query{Projects: []string{project}, Filter: f, PageSize: 10}); len(raw) != 0 {
		t.Errorf("flow entries with flow logs off: %s", raw)
	}
}
