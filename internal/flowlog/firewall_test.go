package flowlog

import (
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/firewall"
)

// Each connection a logging rule decided is one entry, the instance's the
// rule applies to (the receiver, for ingress), with the rule's details;
// told once, and forgotten when it leaves the rules' log.
func TestFirewall(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	n := network(1, true)
	n.Subnets["us-central1/default"] = Subnet{Project: "demo", Region: "us-central1", Name: "default", ID: "123"} // flow logs off
	n.Rules = map[uint32]LoggedRule{firewall.RuleID("deny-pod-1"): {Name: "deny-pod-1", VPC: "default", Priority: 100, Deny: true, Ingress: true,
		Ranges: []string{"10.4.0.2/32"}, Protocols: []RuleProtocol{{"tcp", []string{"8080"}}}}}
	hit := firewall.Hit{Rule: firewall.RuleID("deny-pod-1"), Protocol: 6, Src: wget.Src, Dst: wget.Dst}
	other := firewall.Hit{Rule: firewall.RuleID("not-logged"), Protocol: 6, Src: wget.Src, Dst: wget.Dst}
	r := NewReporter(t0)
	es := r.Firewall(t0.Add(time.Second), n, []firewall.Hit{hit, other})
	if len(es) != 1 {
		t.Fatalf("%d entries", len(es))
	}
	p := payload(t, es[0])
	details := p["rule_details"].(map[string]any)
	if es[0].LogName != "projects/demo/logs/compute.googleapis.com%2Ffirewall" || p["disposition"] != "DENIED" ||
		details["reference"] != "network:default/firewall:deny-pod-1" || details["direction"] != "INGRESS" ||
		p["instance"].(map[string]any)["vm_name"] != "node-b" || p["remote_instance"].(map[string]any)["vm_name"] != "node-a" ||
		p["connection"].(map[string]any)["dest_port"].(float64) != 8080 {
		t.Errorf("entry: %v", p)
	}
	if es := r.Firewall(t0.Add(2*time.Second), n, []firewall.Hit{hit}); len(es) != 0 {
		t.Errorf("told again: %d entries", len(es))
	}
	r.Firewall(t0.Add(3*time.Second), n, nil)
	if es := r.Firewall(t0.Add(4*time.Second), n, []firewall.Hit{hit}); len(es) != 1 {
		t.Errorf("a new attempt after the last left the log: %d entries", len(es))
	}
}
