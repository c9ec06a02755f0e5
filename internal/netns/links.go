package netns

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// IfName is an interface name made of prefix and a hash of s: names are
// at most 15 bytes, so a hash stands for a long name.
func IfName(prefix, s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%s%08x", prefix, h.Sum32())
}

// AddVeth creates a veth pair: name in h's namespace, its peer eth0 in
// the namespace peerNS; both up. A leftover of an earlier, half-done
// attempt is replaced.
func AddVeth(h *netlink.Handle, name string, peerNS string) (eth0 netlink.Link, err error) {
	peerFile, err := Open(peerNS)
	if err != nil {
		return nil, err
	}
	defer peerFile.Close()
	if old, err := h.LinkByName(name); err == nil {
		_ = h.LinkDel(old)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(peerFile)),
	}
	if err := h.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("veth %s to %s: %w", name, peerNS, err)
	}
	link, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkSetUp(link)
	}
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", name, err)
	}
	ph, err := Handle(peerNS)
	if err != nil {
		return nil, err
	}
	defer ph.Close()
	if eth0, err = ph.LinkByName("eth0"); err == nil {
		err = ph.LinkSetUp(eth0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: eth0: %w", peerNS, err)
	}
	return eth0, nil
}

// EnsureAddr gives link the address p unless it has it already.
func EnsureAddr(h *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); a.IP.Equal(IP(p.Addr())) && ones == p.Bits() {
			return nil
		}
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: IPNet(p)}); err != nil {
		return fmt.Errorf("address %s on %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

// LinkRoute routes p straight out of link (scope link): p is on the
// other end.
func LinkRoute(h *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	if err := h.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: IPNet(p), Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s on %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

// DefaultRoute routes everything through gw on link.
func DefaultRoute(h *netlink.Handle, link netlink.Link, gw netip.Addr) error {
	if err := h.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: IP(gw)}); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

// IP and IPNet convert to what netlink takes.
func IP(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: IP(p.Addr()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
