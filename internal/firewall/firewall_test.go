package firewall_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

type vm struct {
	ns string
	ip netip.Addr
}

// network attaches three instances to a network: web (tag web), db (tag
// db) and plain (no tags), each listening on 8080 and 9090.
func network(t *testing.T) (string, map[string]vm, []firewall.Instance) {
	t.Helper()
	name := netnstest.Name(t, "vpc")
	subnet := netip.MustParsePrefix("10.128.0.0/20")
	vms := map[string]vm{}
	var instances []firewall.Instance
	for i, n := range []string{"web", "db", "plain"} {
		v := vm{ns: netnstest.Name(t, n), ip: netip.MustParseAddr(fmt.Sprintf("10.128.0.%d", 2+i))}
		if err := vpcnet.Attach(vpcnet.Attachment{Network: name, Node: v.ns, Subnet: subnet, IP: v.ip}); err != nil {
			t.Fatal(err)
		}
		for _, port := range []int{8080, 9090} {
			netnstest.Listen(t, v.ns, netip.AddrPortFrom(v.ip, uint16(port)))
		}
		vms[n] = v
		in := firewall.Instance{Name: n, IP: v.ip}
		if n != "plain" {
			in.Tags = []string{n}
		}
		instances = append(instances, in)
	}
	return name, vms, instances
}

func tcp(ports ...string) []firewall.Protocol {
	p, err := firewall.ParseProtocol("tcp", ports)
	if err != nil {
		panic(err)
	}
	return []firewall.Protocol{p}
}

var everywhere = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}

// The rules decide, in priority order, a deny before an allow; ingress by
// target tags, source ranges and source tags; egress by destination; the
// implied rules deny ingress and allow egress; replies pass.
func TestRules(t *testing.T) {
	ns, vms, instances := network(t)
	subnet := []netip.Prefix{netip.MustParsePrefix("10.128.0.0/20")}
	reach := func(from, to string, port int) bool {
		return dial(vms[from].ns, netip.AddrPortFrom(vms[to].ip, uint16(port))) == nil
	}
	for _, step := range []struct {
		name  string
		rules []firewall.Rule
		want  map[string]bool // "from>to:port"
	}{
		{"no rules: the implied deny", nil, map[string]bool{"web>db:8080": false, "db>web:8080": false}},
		{"allow tcp:8080 from the subnet to db", []firewall.Rule{
			{Name: "db-8080", Priority: 1000, Ingress: true, Protocols: tcp("8080"), Sources: subnet, TargetTags: []string{"db"}},
		}, map[string]bool{"web>db:8080": true, "plain>db:8080": true, "web>db:9090": false, "web>plain:8080": false,
			// Replies reach web, though nothing lets anything into web.
			"db>web:8080": false}},
		{"a deny from tag web at a higher priority", []firewall.Rule{
			{Name: "db-8080", Priority: 1000, Ingress: true, Protocols: tcp("8080"), Sources: subnet, TargetTags: []string{"db"}},
			{Name: "no-web", Priority: 900, Ingress: true, Deny: true, Protocols: tcp(), SourceTags: []string{"web"}, TargetTags: []string{"db"}},
		}, map[string]bool{"web>db:8080": false, "plain>db:8080": true}},
		{"deny before allow at the same priority", []firewall.Rule{
			{Name: "allow", Priority: 500, Ingress: true, Protocols: tcp("8000-9999"), Sources: everywhere},
			{Name: "deny", Priority: 500, Ingress: true, Deny: true, Protocols: tcp("9090"), Sources: everywhere},
		}, map[string]bool{"web>db:8080": true, "web>db:9090": false, "db>plain:8080": true}},
		{"an egress deny stops what ingress allows", []firewall.Rule{
			{Name: "allow", Priority: 1000, Ingress: true, Protocols: tcp(), Sources: everywhere},
			{Name: "web-out", Priority: 1000, Deny: true, Protocols: tcp(), Destinations: []netip.Prefix{netip.PrefixFrom(vms["db"].ip, 32)}, TargetTags: []string{"web"}},
		}, map[string]bool{"web>db:8080": false, "web>plain:8080": true, "plain>db:8080": true}},
		{"all protocols", []firewall.Rule{
			{Name: "all", Priority: 1000, Ingress: true, Protocols: []firewall.Protocol{{Number: -1}}, SourceTags: []string{"web"}},
		}, map[string]bool{"web>db:9090": true, "web>plain:8080": true, "db>plain:8080": false}},
	} {
		if err := firewall.Apply(ns, firewall.Policy{Instances: instances, Rules: step.rules}); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		for path, want := range step.want {
			from, rest, _ := strings.Cut(path, ">")
			to, p, _ := strings.Cut(rest, ":")
			port, _ := strconv.Atoi(p)
			if got := reach(from, to, port); got != want {
				t.Errorf("%s: %s to %s:%d connects: %v, want %v", step.name, from, to, port, got, want)
			}
		}
	}
}

// A packet for nothing on the network is dropped at its edge, and counted;
// without the firewall nothing is filtered.
func TestEdgeAndRemove(t *testing.T) {
	ns, vms, instances := network(t)
	if err := firewall.Apply(ns, firewall.Policy{Instances: instances}); err != nil {
		t.Fatal(err)
	}
	before, err := firewall.EdgeDrops(ns)
	if err != nil {
		t.Fatal(err)
	}
	// An address of the subnet that no instance has.
	_ = dial(vms["web"].ns, netip.MustParseAddrPort("10.128.0.99:8080"))
	after, _ := firewall.EdgeDrops(ns)
	if after <= before {
		t.Errorf("edge drops: %d, then %d", before, after)
	}
	// A peered network's range is no edge: routed there (here nowhere).
	if err := firewall.Apply(ns, firewall.Policy{Instances: instances, Peered: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}}); err != nil {
		t.Fatal(err)
	}
	before, _ = firewall.EdgeDrops(ns)
	_ = dial(vms["web"].ns, netip.MustParseAddrPort("10.200.0.5:8080"))
	if after, _ := firewall.EdgeDrops(ns); after != before {
		t.Errorf("edge drops for a peered range: %d, then %d", before, after)
	}
	if err := firewall.Remove(ns); err != nil {
		t.Fatal(err)
	}
	if err := dial(vms["web"].ns, netip.AddrPortFrom(vms["db"].ip, 8080)); err != nil {
		t.Errorf("without the firewall: %v", err)
	}
}

// dial connects from ns and reads the listener's answer: a reply that
// came back.
func dial(ns string, addr netip.AddrPort) error {
	_, err := netnstest.Dial(ns, addr, 300*time.Millisecond)
	return err
}

// A Compute Engine rule reads as the firewall applies it.
func TestFromCompute(t *testing.T) {
	r, ok, err := firewall.FromCompute(&compute.Firewall{Name: "web", Priority: 900, Direction: "INGRESS",
		Allowed:      []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: []string{"80", "8000-8080"}}, {IPProtocol: "icmp"}},
		SourceRanges: []string{"10.4.0.0/14", "10.128.0.9"}, SourceTags: []string{"lb"}, TargetTags: []string{"web"}})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := firewall.Rule{Name: "web", Priority: 900, Ingress: true,
		Protocols:  []firewall.Protocol{{Number: 6, Ports: []firewall.PortRange{{80, 80}, {8000, 8080}}}, {Number: 1}},
		Sources:    []netip.Prefix{netip.MustParsePrefix("10.4.0.0/14"), netip.MustParsePrefix("10.128.0.9/32")},
		SourceTags: []string{"lb"}, TargetTags: []string{"web"}}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	egress, _, _ := firewall.FromCompute(&compute.Firewall{Name: "out", Direction: "EGRESS", Denied: []*compute.FirewallDenied{{IPProtocol: "all"}}})
	if !egress.Deny || egress.Ingress || fmt.Sprint(egress.Destinations) != "[0.0.0.0/0]" || egress.Protocols[0].Number != -1 {
		t.Errorf("egress deny all: %+v", egress)
	}
	if _, ok, _ := firewall.FromCompute(&compute.Firewall{Name: "off", Disabled: true, Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp"}}}); ok {
		t.Error("a disabled rule applies")
	}
	// IPv6 sources match nothing on an IPv4 network.
	if v6, _, err := firewall.FromCompute(&compute.Firewall{Name: "v6", Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp"}}, SourceRanges: []string{"::/0"}}); err != nil || len(v6.Sources) != 0 {
		t.Errorf("an IPv6 rule: %+v %v", v6, err)
	}
}

// A rule with logging on records the connections it decides, allowed or
// denied, with their ports; a rule without logs nothing.
func TestLogged(t *testing.T) {
	ns, vms, instances := network(t)
	rules := []firewall.Rule{
		{Name: "allow-8080", Priority: 1000, Ingress: true, Protocols: tcp("8080"), Sources: everywhere, Log: true},
		{Name: "deny-9090", Priority: 900, Ingress: true, Deny: true, Protocols: tcp("9090"), Sources: everywhere, TargetTags: []string{"db"}, Log: true},
		{Name: "allow-9090", Priority: 1000, Ingress: true, Protocols: tcp("9090"), Sources: everywhere},
	}
	if err := firewall.Apply(ns, firewall.Policy{Instances: instances, Rules: rules}); err != nil {
		t.Fatal(err)
	}
	if hits, err := firewall.Logged(ns); err != nil || len(hits) != 0 {
		t.Fatalf("before any connection: %v %v", hits, err)
	}
	db, web, plain := vms["db"], vms["web"], vms["plain"]
	if err := dial(web.ns, netip.AddrPortFrom(db.ip, 8080)); err != nil {
		t.Fatal(err)
	}
	if err := dial(web.ns, netip.AddrPortFrom(db.ip, 9090)); err == nil {
		t.Fatal("the deny rule let web reach db:9090")
	}
	if err := dial(web.ns, netip.AddrPortFrom(plain.ip, 9090)); err != nil {
		t.Fatal(err)
	}
	hits, err := firewall.Logged(ns)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, h := range hits {
		name := map[uint32]string{firewall.RuleID("allow-8080"): "allow-8080", firewall.RuleID("deny-9090"): "deny-9090"}[h.Rule]
		if h.Protocol != 6 || h.Src.Addr() != web.ip || h.Src.Port() == 0 {
			t.Errorf("hit %+v", h)
		}
		got[fmt.Sprintf("%s %s", name, h.Dst)] = true
	}
	want := map[string]bool{"allow-8080 " + db.ip.String() + ":8080": true, "deny-9090 " + db.ip.String() + ":9090": true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged %v, want %v", got, want)
	}
}

// A large policy applies in one transaction: the kernel's
// acknowledgements of its messages overflow a netlink socket of the
// default size (ENOBUFS) at a hundred rules, and the batch outgrows its
// send buffer at a few hundred.
func TestLargePolicy(t *testing.T) {
	ns, vms, instances := network(t)
	var rules []firewall.Rule
	for i := range 2000 {
		rules = append(rules, firewall.Rule{Name: fmt.Sprint("r", i), Priority: int64(1000 + i), Ingress: true,
			Protocols: tcp(fmt.Sprint(10000 + i)), Sources: everywhere})
	}
	rules[len(rules)-1].Protocols = tcp("8080") // the last one counts too
	if err := firewall.Apply(ns, firewall.Policy{Instances: instances, Rules: rules}); err != nil {
		t.Fatal(err)
	}
	if err := dial(vms["web"].ns, netip.AddrPortFrom(vms["db"].ip, 8080)); err != nil {
		t.Errorf("8080, allowed by the last rule: %v", err)
	}
	if err := dial(vms["web"].ns, netip.AddrPortFrom(vms["db"].ip, 9090)); err == nil {
		t.Error("9090, allowed by no rule, connects")
	}
}
