// Package firewall enforces a VPC network's firewall rules on the packets
// its namespace routes between instances, in nftables (one table, replaced
// whole in one transaction on every change).
//
// As in Compute Engine: the rules apply in priority order, a deny before
// an allow of the same priority; the first that matches decides. An
// egress rule applies to the instances that send, an ingress rule to the
// instances that receive (all, or those with one of its target tags);
// a packet must pass both. What no rule decides falls to the implied
// rules: egress allowed, ingress denied. The network is stateful: replies
// to an allowed connection pass whatever the rules say. A packet for no
// instance of the network leaves it nowhere: it is dropped at the edge
// and counted.
package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Instance is a VM on the network as its firewall sees it: its primary
// address, its alias ranges (a node's pod range) and its network tags.
type Instance struct {
	Name   string
	IP     netip.Addr
	Ranges []netip.Prefix
	Tags   []string
}

// addresses are what the instance sends from and receives at.
func (in Instance) addresses() []netip.Prefix {
	return append([]netip.Prefix{netip.PrefixFrom(in.IP, 32)}, in.Ranges...)
}

// Rule is a firewall rule.
type Rule struct {
	Name     string
	Priority int64
	Ingress  bool
	Deny     bool
	// Protocols are what the rule allows or denies.
	Protocols []Protocol
	// Sources and SourceTags (ingress) are whom it applies to; the union
	// of both. Destinations (egress) likewise.
	Sources      []netip.Prefix
	SourceTags   []string
	Destinations []netip.Prefix
	// TargetTags limit the instances it applies to (none: all).
	TargetTags []string
	// Log records the connections the rule decides (see Logged).
	Log bool
}

// Protocol is an IP protocol (number), with ports for those that have
// them (none: all).
type Protocol struct {
	Number int // -1: every protocol
	Ports  []PortRange
}

// PortRange is an inclusive range of ports.
type PortRange struct{ From, To uint16 }

// Policy is a network's instances and rules, and the ranges of the
// networks it is peered with (not dropped at its edge: routed there).
type Policy struct {
	Instances []Instance
	Rules     []Rule
	Peered    []netip.Prefix
}

// TableName is the firewall's table in a network's namespace.
const TableName = "kubeyard-firewall"

// Apply replaces the firewall of the network namespace ns with policy's.
func Apply(ns string, p Policy) error {
	// Add, delete, add: a fresh table, whether one was there or not, in
	// the same transaction as its rules.
	return replace(ns, func(conn *nftables.Conn, table *nftables.Table) {
		conn.AddTable(table)
		compile(conn, table, p)
	})
}

// Remove takes the firewall out of ns (nothing is filtered then).
func Remove(ns string) error {
	return replace(ns, func(*nftables.Conn, *nftables.Table) {})
}

// replace deletes the firewall's table in ns (whether it is there or not)
// and adds what then does, in one transaction.
func replace(ns string, then func(*nftables.Conn, *nftables.Table)) error {
	conn, closeNS, err := connect(ns)
	if err != nil {
		return err
	}
	defer closeNS()
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	conn.AddTable(table)
	conn.DelTable(table)
	then(conn, table)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("firewall: %s: %w", ns, err)
	}
	return nil
}

// EdgeDrops counts the packets ns dropped at the network's edge.
func EdgeDrops(ns string) (uint64, error) {
	conn, closeNS, err := connect(ns)
	if err != nil {
		return 0, err
	}
	defer closeNS()
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	rules, err := conn.GetRules(table, &nftables.Chain{Name: edgeChain, Table: table})
	if err != nil {
		return 0, fmt.Errorf("firewall: %s: %w", ns, err)
	}
	for _, r := range rules {
		if string(r.UserData) == edgeRule {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					return c.Packets, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("firewall: %s has no edge rule", ns)
}

func connect(ns string) (*nftables.Conn, func(), error) {
	h, err := netns.Open(ns)
	if err != nil {
		return nil, nil, err
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.WithSockOptions(largeBuffers))
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("firewall: %s: %w", ns, err)
	}
	return conn, func() { h.Close() }, nil
}

// transactionBuffer is the netlink socket's send and receive buffer: a
// transaction goes in one sendmsg, which the send buffer bounds, and the
// kernel queues an acknowledgement for each of its messages before the
// first is read, which overflow the receive buffer's default (ENOBUFS)
// with a hundred rules. Memory is taken only as it fills.
const transactionBuffer = 64 << 20

// largeBuffers sizes the socket past the machine's limits (rmem_max,
// wmem_max), as nft does for its batches (SO_SNDBUFFORCE and
// SO_RCVBUFFORCE, which CAP_NET_ADMIN allows).
func largeBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, transactionBuffer); serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, transactionBuffer)
		}
	}); err != nil {
		return err
	}
	return serr
}

const (
	forwardChain = "forward"
	edgeChain    = "edge"
	edgeRule     = "edge"
)

// compile adds the policy's chains and rules to table.
func compile(c *nftables.Conn, table *nftables.Table, p Policy) {
	forward := c.AddChain(&nftables.Chain{
		Name: forwardChain, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	add := func(chain *nftables.Chain, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	// Replies, and what belongs to an allowed connection, pass.
	add(forward, &expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: native(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: native(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native(0)},
		&expr.Verdict{Kind: expr.VerdictAccept})

	logged := &nftables.Set{Table: table, Name: loggedSet, KeyType: loggedKey, Concatenation: true,
		Dynamic: true, HasTimeout: true, Timeout: LoggedFor}
	c.AddSet(logged, nil)
	rules := slices.Clone(p.Rules)
	slices.SortStableFunc(rules, func(a, b Rule) int {
		if a.Priority != b.Priority {
			return int(a.Priority - b.Priority)
		}
		return boolOrder(b.Deny) - boolOrder(a.Deny) // deny first
	})
	tagged := map[string][]netip.Prefix{} // tag: the primary addresses of its instances
	for _, in := range p.Instances {
		for _, t := range in.Tags {
			tagged[t] = append(tagged[t], netip.PrefixFrom(in.IP, 32))
		}
	}
	// forward sends each packet through its sender's egress chain, then
	// its receiver's ingress chain; a packet for none is at the edge.
	ingresses := map[string]*nftables.Chain{}
	for _, in := range p.Instances {
		egress := c.AddChain(&nftables.Chain{Name: "egress-" + in.Name, Table: table})
		ingress := c.AddChain(&nftables.Chain{Name: "ingress-" + in.Name, Table: table})
		for _, r := range rules {
			if !r.targets(in) {
				continue
			}
			if r.Ingress {
				sources := slices.Clone(r.Sources)
				for _, t := range r.SourceTags {
					sources = append(sources, tagged[t]...)
				}
				verdict := expr.VerdictAccept
				if r.Deny {
					verdict = expr.VerdictDrop
				}
				for _, m := range matches(r.Protocols, sources, saddrOffset) {
					add(ingress, append(append(m, r.logExprs(logged)...), &expr.Verdict{Kind: verdict})...)
				}
			} else {
				verdict := expr.VerdictReturn // on to the receiver's ingress
				if r.Deny {
					verdict = expr.VerdictDrop
				}
				for _, m := range matches(r.Protocols, r.Destinations, daddrOffset) {
					add(egress, append(append(m, r.logExprs(logged)...), &expr.Verdict{Kind: verdict})...)
				}
			}
		}
		// The implied ingress rule: deny. (The implied egress rule,
		// allow, is the chain's end: back to forward.)
		add(ingress, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
		for _, a := range in.addresses() {
			add(forward, append(address(saddrOffset, a), &expr.Verdict{Kind: expr.VerdictJump, Chain: egress.Name})...)
		}
		ingresses[in.Name] = ingress
	}
	for _, in := range p.Instances {
		for _, a := range in.addresses() {
			add(forward, append(address(daddrOffset, a), &expr.Verdict{Kind: expr.VerdictJump, Chain: ingresses[in.Name].Name})...)
		}
	}
	// The edge, before routing: what is for no instance and not for the
	// network itself (its gateways) goes no further, counted.
	edge := c.AddChain(&nftables.Chain{
		Name: edgeChain, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter,
	})
	for _, in := range p.Instances {
		for _, a := range in.addresses() {
			add(edge, append(address(daddrOffset, a), &expr.Verdict{Kind: expr.VerdictAccept})...)
		}
	}
	for _, r := range p.Peered {
		add(edge, append(address(daddrOffset, r), &expr.Verdict{Kind: expr.VerdictAccept})...)
	}
	add(edge, &expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: native(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictAccept})
	c.AddRule(&nftables.Rule{Table: table, Chain: edge, UserData: []byte(edgeRule),
		Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}})
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// targets says whether the rule applies to the instance.
func (r Rule) targets(in Instance) bool {
	if len(r.TargetTags) == 0 {
		return true
	}
	for _, t := range r.TargetTags {
		if slices.Contains(in.Tags, t) {
			return true
		}
	}
	return false
}

const (
	saddrOffset = 12
	daddrOffset = 16
)

// matches are the rule bodies of protocols × ranges (× port ranges): any
// of them matching is the rule matching.
func matches(protocols []Protocol, ranges []netip.Prefix, offset uint32) [][]expr.Any {
	var out [][]expr.Any
	for _, pr := range ranges {
		for _, proto := range protocols {
			base := address(offset, pr)
			if proto.Number >= 0 {
				base = append(base, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(proto.Number)}})
			}
			if len(proto.Ports) == 0 {
				out = append(out, base)
				continue
			}
			for _, ports := range proto.Ports {
				m := append(slices.Clone(base), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
				if ports.From == ports.To {
					m = append(m, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(ports.From)})
				} else {
					m = append(m, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: port(ports.From), ToData: port(ports.To)})
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// address matches the IPv4 source (offset 12) or destination (16) with
// p; 0.0.0.0/0 matches everything.
func address(offset uint32, p netip.Prefix) []expr.Any {
	if p.Bits() == 0 {
		return nil
	}
	p = p.Masked()
	a := p.Addr().As4()
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}
	if p.Bits() == 32 {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]}}
	}
	mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
	return []expr.Any{load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]}}
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// native is v in the host's byte order, as conntrack's state is.
func native(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// protocolNumbers are the names firewall rules use.
var protocolNumbers = map[string]int{
	"all": -1, "icmp": unix.IPPROTO_ICMP, "tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP,
	"esp": unix.IPPROTO_ESP, "ah": unix.IPPROTO_AH, "sctp": unix.IPPROTO_SCTP, "ipip": unix.IPPROTO_IPIP,
}

// ParseProtocol reads a rule's protocol (a name or a number) and ports
// ("80", "8000-8080").
func ParseProtocol(name string, ports []string) (Protocol, error) {
	n, ok := protocolNumbers[strings.ToLower(name)]
	if !ok {
		v, err := strconv.Atoi(name)
		if err != nil || v < 0 || v > 255 {
			return Protocol{}, fmt.Errorf("protocol %q", name)
		}
		n = v
	}
	p := Protocol{Number: n}
	for _, s := range ports {
		lo, hi, isRange := strings.Cut(s, "-")
		from, err := strconv.ParseUint(lo, 10, 16)
		to := from
		if err == nil && isRange {
			to, err = strconv.ParseUint(hi, 10, 16)
		}
		if err != nil || from > to {
			return Protocol{}, fmt.Errorf("ports %q", s)
		}
		p.Ports = append(p.Ports, PortRange{uint16(from), uint16(to)})
	}
	return p, nil
}

// FromCompute is a Compute Engine firewall rule as the firewall applies
// it; disabled rules apply as none (ok false).
func FromCompute(fw *compute.Firewall) (rule Rule, ok bool, err error) {
	if fw.Disabled {
		return Rule{}, false, nil
	}
	r := Rule{Name: fw.Name, Priority: fw.Priority, Ingress: fw.Direction != "EGRESS", Deny: len(fw.Denied) > 0,
		SourceTags: fw.SourceTags, TargetTags: fw.TargetTags, Log: fw.LogConfig != nil && fw.LogConfig.Enable}
	for _, a := range fw.Allowed {
		p, err := ParseProtocol(a.IPProtocol, a.Ports)
		if err != nil {
			return Rule{}, false, fmt.Errorf("firewall rule %s: %w", fw.Name, err)
		}
		r.Protocols = append(r.Protocols, p)
	}
	for _, d := range fw.Denied {
		p, err := ParseProtocol(d.IPProtocol, d.Ports)
		if err != nil {
			return Rule{}, false, fmt.Errorf("firewall rule %s: %w", fw.Name, err)
		}
		r.Protocols = append(r.Protocols, p)
	}
	if r.Sources, err = prefixes(fw.SourceRanges); err == nil {
		r.Destinations, err = prefixes(fw.DestinationRanges)
	}
	if err != nil {
		return Rule{}, false, fmt.Errorf("firewall rule %s: %w", fw.Name, err)
	}
	if !r.Ingress && len(r.Destinations) == 0 {
		r.Destinations = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}
	return r, true, nil
}

// prefixes reads ranges, a bare address being its /32. IPv6 ranges are
// left out: no IPv6 packet crosses these networks, so they match none.
func prefixes(ranges []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ranges {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("range %q", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4() {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}
