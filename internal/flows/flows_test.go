package flows_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/flows"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// A connection between two instances is read back from the network's
// conntrack with what crossed it each way.
func TestDump(t *testing.T) {
	network := netnstest.Name(t, "vpc")
	subnet := netip.MustParsePrefix("10.128.0.0/20")
	var nodes []vpcnet.Attachment
	var instances []firewall.Instance
	for i, name := range []string{"a", "b"} {
		a := vpcnet.Attachment{Network: network, Node: netnstest.Name(t, name), Subnet: subnet, IP: netip.AddrFrom4([4]byte{10, 128, 0, byte(2 + i)})}
		if err := vpcnet.Attach(a); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, a)
		instances = append(instances, firewall.Instance{Name: name, IP: a.IP})
	}
	if err := flows.EnableAccounting(network); err != nil {
		t.Fatal(err)
	}
	// The firewall's stateful rules are what has conntrack track the
	// network's packets.
	all := []firewall.Protocol{{Number: -1}}
	if err := firewall.Apply(network, firewall.Policy{Instances: instances, Rules: []firewall.Rule{
		{Name: "all", Priority: 1000, Ingress: true, Protocols: all, Sources: []netip.Prefix{subnet}}}}); err != nil {
		t.Fatal(err)
	}
	to := netip.AddrPortFrom(nodes[1].IP, 8080)
	netnstest.Listen(t, nodes[1].Node, to)
	// Denied, a connection is never a flow (as on GCP, denied ingress is
	// not logged): conntrack forgets what was dropped before it was
	// confirmed.
	denied := netip.AddrPortFrom(nodes[1].IP, 9090)
	netnstest.Listen(t, nodes[1].Node, denied)
	if _, err := netnstest.Dial(nodes[0].Node, denied, 300*time.Millisecond); err != nil {
		t.Fatalf("before the deny rule: %v", err)
	}
	flowsTo := func(dst netip.AddrPort) int {
		fs, err := flows.Dump(network)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range fs {
			if f.Dst == dst {
				n++
			}
		}
		return n
	}
	tracked := flowsTo(denied)
	deny := []firewall.Rule{{Name: "deny-9090", Priority: 900, Ingress: true, Deny: true, Protocols: []firewall.Protocol{{Number: 6, Ports: []firewall.PortRange{{From: 9090, To: 9090}}}}, Sources: []netip.Prefix{subnet}},
		{Name: "all", Priority: 1000, Ingress: true, Protocols: all, Sources: []netip.Prefix{subnet}}}
	if err := firewall.Apply(network, firewall.Policy{Instances: instances, Rules: deny}); err != nil {
		t.Fatal(err)
	}
	if _, err := netnstest.Dial(nodes[0].Node, denied, 300*time.Millisecond); err == nil {
		t.Fatal("the deny rule let a through")
	}
	if n := flowsTo(denied); n != tracked {
		t.Errorf("denied connections tracked: %d flows to %s, %d before the rule", n, denied, tracked)
	}
	if got, err := netnstest.Dial(nodes[0].Node, to, time.Second); err != nil || got != nodes[0].IP.String() {
		t.Fatalf("a to b: %q %v", got, err)
	}
	fs, err := flows.Dump(network)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Src.Addr() == nodes[0].IP && f.Dst == to && f.Protocol == 6 {
			if f.SentPackets == 0 || f.RepliedBytes < uint64(len(nodes[0].IP.String())) || f.Start.IsZero() {
				t.Errorf("the flow's counters: %+v", f)
			}
			return
		}
	}
	t.Errorf("no flow from %s to %s in %+v", nodes[0].IP, to, fs)
}
