package flowlog

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/flows"
	"github.com/kubeyard/kubeyard/internal/logging"
)

func network(sampling float64, metadata bool) Network {
	return Network{
		Instances: []Instance{
			{Project: "demo", Zone: "us-central1-a", Name: "node-a", IP: netip.MustParseAddr("10.128.0.2"), Ranges: []netip.Prefix{netip.MustParsePrefix("10.4.0.0/24")},
				Subnet: "default", VPC: "default", Cluster: "flow-log-test", ClusterLocation: "us-central1-a"},
			{Project: "demo", Zone: "us-central1-a", Name: "node-b", IP: netip.MustParseAddr("10.128.0.3"), Ranges: []netip.Prefix{netip.MustParsePrefix("10.4.1.0/24")},
				Subnet: "default", VPC: "default", Cluster: "flow-log-test", ClusterLocation: "us-central1-a"},
		},
		Subnets: map[string]Subnet{"us-central1/default": {FlowLogs: true, Project: "demo", Region: "us-central1", Name: "default", ID: "123", Network: "default", Sampling: sampling, Metadata: metadata}},
		Pod: func(a netip.Addr) (Pod, bool) {
			switch a.String() {
			case "10.4.0.2":
				return Pod{"pod-1", "default"}, true
			case "10.4.1.2":
				return Pod{"pod-2", "default"}, true
			}
			return Pod{}, false
		},
	}
}

func payload(t *testing.T, e logging.Entry) map[string]any {
	t.Helper()
	b, _ := json.Marshal(e.JSONPayload)
	var p map[string]any
	json.Unmarshal(b, &p)
	return p
}

var wget = flows.Flow{ID: 7, Protocol: 6, Src: netip.MustParseAddrPort("10.4.0.2:40112"), Dst: netip.MustParseAddrPort("10.4.1.2:8080"),
	SentBytes: 400, SentPackets: 6, RepliedBytes: 600, RepliedPackets: 5}

// Both ends report both directions; the next report has only what is new.
func TestReport(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r := NewReporter(t0)
	es := r.Report(t0.Add(5*time.Second), network(1, true), []flows.Flow{wget})
	var got []string
	for _, e := range es {
		p := payload(t, e)
		c := p["connection"].(map[string]any)
		got = append(got, c["src_ip"].(string)+">"+c["dest_ip"].(string)+" "+p["reporter"].(string)+" "+p["bytes_sent"].(string))
		if e.LogName != "projects/demo/logs/compute.googleapis.com%2Fvpc_flows" || e.Resource.Type != "gce_subnetwork" || e.Resource.Labels["subnetwork_name"] != "default" {
			t.Errorf("entry: %+v", e)
		}
	}
	if strings.Join(got, ", ") != "10.4.0.2>10.4.1.2 SRC 400, 10.4.0.2>10.4.1.2 DEST 400, 10.4.1.2>10.4.0.2 SRC 600, 10.4.1.2>10.4.0.2 DEST 600" {
		t.Errorf("entries: %s", strings.Join(got, ", "))
	}
	p := payload(t, es[0])
	if c := p["connection"].(map[string]any); c["dest_port"].(float64) != 8080 || c["protocol"].(float64) != 6 || c["src_port"].(float64) != 40112 {
		t.Errorf("connection: %v", c)
	}
	if p["src_instance"].(map[string]any)["vm_name"] != "node-a" || p["dest_instance"].(map[string]any)["region"] != "us-central1" ||
		p["src_gke_details"].(map[string]any)["pod"].(map[string]any)["pod_name"] != "pod-1" || p["dest_vpc"].(map[string]any)["vpc_name"] != "default" {
		t.Errorf("metadata: %v", p)
	}
	if es := r.Report(t0.Add(10*time.Second), network(1, true), []flows.Flow{wget}); len(es) != 0 {
		t.Errorf("%d entries for a connection with nothing new", len(es))
	}
	more := wget
	more.SentBytes, more.SentPackets = 450, 7
	es = r.Report(t0.Add(15*time.Second), network(1, true), []flows.Flow{more})
	if len(es) != 2 || payload(t, es[0])["bytes_sent"] != "50" || payload(t, es[0])["packets_sent"] != "1" {
		t.Errorf("what is new: %d entries, %v", len(es), es)
	}
	if es := r.Report(t0.Add(20*time.Second), network(1, false), []flows.Flow{func() flows.Flow { f := more; f.SentPackets++; return f }()}); len(es) == 0 || payload(t, es[0])["src_instance"] != nil {
		t.Errorf("metadata excluded: %v", es)
	}
}

// flowSampling keeps its share exactly; at one half each direction is
// still logged by one of its ends.
func TestSampling(t *testing.T) {
	t0 := time.Now()
	t5 := t0.Add(5 * time.Second)
	if es := NewReporter(t0).Report(t5, network(0, true), []flows.Flow{wget}); len(es) != 0 {
		t.Errorf("sampling 0: %d entries", len(es))
	}
	r := NewReporter(t0)
	var fs []flows.Flow
	for i := range 10 {
		f := wget
		f.ID, f.Src = uint32(i), netip.AddrPortFrom(f.Src.Addr(), uint16(40000+i))
		fs = append(fs, f)
	}
	es := r.Report(t5, network(0.5, true), fs)
	if len(es) != 20 {
		t.Errorf("sampling 0.5 of 40 entries: %d", len(es))
	}
	seen := map[string]bool{}
	for _, e := range es {
		c := payload(t, e)["connection"].(map[string]any)
		seen[fmt.Sprint(c["src_ip"], c["src_port"], ">", c["dest_ip"], c["dest_port"])] = true
	}
	if len(seen) != 20 {
		t.Errorf("directions logged at 0.5: %d of 20", len(seen))
	}
}

// A subnetwork with a longer aggregation interval reports at its end what
// crossed since its last report, a connection that ended meanwhile
// included; the other end, every 5 s, reports as before.
func TestAggregationInterval(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	n := network(1, true)
	n.Instances[1].Subnet = "slow"
	n.Subnets["us-central1/slow"] = Subnet{FlowLogs: true, Project: "demo", Region: "us-central1", Name: "slow", ID: "456", Network: "default", Sampling: 1, Interval: 30 * time.Second}
	r := NewReporter(t0)
	reporters := func(es []logging.Entry) (src, dest []string) {
		for _, e := range es {
			p := payload(t, e)
			c := p["connection"].(map[string]any)
			what := fmt.Sprint(c["src_ip"], ">", c["dest_ip"], " ", p["bytes_sent"])
			if e.Resource.Labels["subnetwork_name"] == "slow" {
				dest = append(dest, what)
			} else {
				src = append(src, what)
			}
		}
		return src, dest
	}
	// Both report at once, then each at the end of its interval.
	fast, slow := reporters(r.Report(t0.Add(5*time.Second), n, []flows.Flow{wget}))
	if len(fast) != 2 || len(slow) != 2 {
		t.Errorf("at 5 s: %v from default, %v from slow", fast, slow)
	}
	more := wget
	more.SentBytes, more.SentPackets = 450, 7
	for at := 10 * time.Second; at < 35*time.Second; at += 5 * time.Second {
		live := []flows.Flow{more}
		if at > 15*time.Second {
			live = nil // the connection is gone
		}
		fast, slow := reporters(r.Report(t0.Add(at), n, live))
		if len(slow) != 0 || at == 10*time.Second && len(fast) != 1 {
			t.Errorf("at %s: %v from default, %v from slow", at, fast, slow)
		}
	}
	_, slow = reporters(r.Report(t0.Add(35*time.Second), n, nil))
	if strings.Join(slow, ", ") != "10.4.0.2>10.4.1.2 50" {
		t.Errorf("at 35 s, the slow subnetwork's end reports %v", slow)
	}
	if len(r.Seen) != 0 || len(r.Reported) != 0 {
		t.Errorf("the connection is still remembered: %v %v", r.Seen, r.Reported)
	}
}
