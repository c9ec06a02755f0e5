package firewall

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Firewall rules logging: a rule with Log on, as it decides a packet,
// puts the packet's connection (addresses, protocol, ports) and the rule
// into a set of the table, where it stays LoggedFor after its last packet.
// Allowed connections are there once (their later packets pass as part of
// the connection, before any rule); denied ones are refreshed by each
// attempt. Logged reads the set; its reader says what is new.

// LoggedFor is how long a connection stays in the set after the packet
// that put it there.
const LoggedFor = time.Minute

const loggedSet = "logged"

// loggedKey is source . destination . protocol . ports (the transport
// header's first four bytes: source and destination port) . rule.
var loggedKey = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetProto,
	nftables.TypeInteger, nftables.TypeMark)

// RuleID is the number a rule is logged under: a hash of its name, so
// that it stays the same when other rules change.
func RuleID(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// Registers of the key, one 32-bit register per field (NFT_REG32_00 on).
const keyRegister = 8

// logExprs put the packet's connection and the rule into the set, if the
// rule logs.
func (r Rule) logExprs(set *nftables.Set) []expr.Any {
	if !r.Log {
		return nil
	}
	return []expr.Any{
		&expr.Payload{DestRegister: keyRegister, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOffset, Len: 4},
		&expr.Payload{DestRegister: keyRegister + 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOffset, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: keyRegister + 2},
		&expr.Payload{DestRegister: keyRegister + 3, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 4},
		&expr.Immediate{Register: keyRegister + 4, Data: native(RuleID(r.Name))},
		&expr.Dynset{SrcRegKey: keyRegister, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: LoggedFor},
	}
}

// Hit is a connection a logging rule decided.
type Hit struct {
	Rule     uint32 // RuleID of its name
	Protocol uint8
	// Src opened the connection to Dst (ports zero for protocols without).
	Src, Dst netip.AddrPort
}

// Logged lists the connections the logging rules of ns decided in the
// last LoggedFor.
func Logged(ns string) ([]Hit, error) {
	conn, closeNS, err := connect(ns)
	if err != nil {
		return nil, err
	}
	defer closeNS()
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	set, err := conn.GetSetByName(table, loggedSet)
	if err != nil {
		return nil, fmt.Errorf("firewall: %s: %w", ns, err)
	}
	elems, err := conn.GetSetElements(set)
	if err != nil {
		return nil, fmt.Errorf("firewall: %s: %w", ns, err)
	}
	out := make([]Hit, 0, len(elems))
	for _, e := range elems {
		k := e.Key
		if len(k) < 20 {
			continue
		}
		h := Hit{Protocol: k[8], Rule: binary.NativeEndian.Uint32(k[16:20])}
		var sport, dport uint16
		if h.Protocol == unix.IPPROTO_TCP || h.Protocol == unix.IPPROTO_UDP || h.Protocol == unix.IPPROTO_SCTP {
			sport, dport = binary.BigEndian.Uint16(k[12:14]), binary.BigEndian.Uint16(k[14:16])
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(k[0:4])), sport)
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(k[4:8])), dport)
		out = append(out, h)
	}
	return out, nil
}
