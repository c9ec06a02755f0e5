// Package flows reads the connections that cross a VPC network from
// conntrack in the network's namespace, with the bytes and packets each
// way (conntrack accounting, turned on in that namespace only): what VPC
// flow logs are made of.
package flows

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Flow is a connection through the network.
type Flow struct {
	// ID is conntrack's, unique among the live connections.
	ID       uint32
	Protocol uint8
	// Src opened the connection to Dst.
	Src, Dst netip.AddrPort
	// Sent is from Src to Dst, Replied from Dst to Src.
	SentBytes, SentPackets       uint64
	RepliedBytes, RepliedPackets uint64
	// Start is when conntrack saw it first (zero without conntrack
	// timestamps).
	Start time.Time
}

// EnableAccounting turns on conntrack's byte and packet counters in the
// namespace ns, for connections that start from then on.
func EnableAccounting(ns string) error {
	if err := netns.SetSysctl(ns, "net/netfilter/nf_conntrack_acct", "1"); err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	if err := netns.SetSysctl(ns, "net/netfilter/nf_conntrack_timestamp", "1"); err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	return nil
}

// Dump lists the IPv4 connections conntrack tracks in ns.
func Dump(ns string) ([]Flow, error) {
	h, err := netns.Open(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	conn, err := conntrack.Dial(&netlink.Config{NetNS: int(h)})
	if err != nil {
		return nil, fmt.Errorf("flows: %s: %w", ns, err)
	}
	defer conn.Close()
	got, err := conn.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("flows: %s: %w", ns, err)
	}
	out := make([]Flow, 0, len(got))
	for _, f := range got {
		o := f.TupleOrig
		if !o.IP.SourceAddress.Is4() {
			continue
		}
		out = append(out, Flow{
			ID: f.ID, Protocol: o.Proto.Protocol,
			Src:       netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort),
			Dst:       netip.AddrPortFrom(o.IP.DestinationAddress, o.Proto.DestinationPort),
			SentBytes: f.CountersOrig.Bytes, SentPackets: f.CountersOrig.Packets,
			RepliedBytes: f.CountersReply.Bytes, RepliedPackets: f.CountersReply.Packets,
			Start: f.Timestamp.Start,
		})
	}
	return out, nil
}
