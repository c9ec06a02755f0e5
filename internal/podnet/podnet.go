// Package podnet wires pods to their node point to point, as GKE's CNI
// (the ptp plugin) does: each pod's namespace gets an eth0, a veth whose
// peer stays in the node's namespace. The pod has its address as a /32
// and the first address of the node's pod range as its gateway, which the
// node's end of every veth holds; the node routes each pod's /32 to its
// veth. Every packet a pod sends is routed by the node, to another pod of
// the node included: that is where intra-node visibility (package netd)
// takes same-node traffic out to the VPC network instead.
package podnet

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Gateway is the pods' gateway in a pod range: its first host.
func Gateway(podCIDR netip.Prefix) netip.Addr { return podCIDR.Masked().Addr().Next() }

// EnsureNode sets up the node's side: forwarding on, and the pod range
// unreachable but for the pods' own routes (a packet for an address no
// pod has is refused here, not sent back to the network). It is
// idempotent.
func EnsureNode(nodeNS string, podCIDR netip.Prefix) error {
	h, err := netns.Handle(nodeNS)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.RouteReplace(&netlink.Route{Dst: netns.IPNet(podCIDR.Masked()), Type: unix.RTN_UNREACHABLE}); err != nil {
		return fmt.Errorf("podnet: %s: route %s: %w", nodeNS, podCIDR, err)
	}
	return netns.SetSysctl(nodeNS, "net/ipv4/ip_forward", "1")
}

// AddPod gives the pod's namespace its eth0 with ip in the node's pod
// range, routed by the node. Adding a pod twice is adding it once.
func AddPod(nodeNS, podNS string, ip netip.Addr, podCIDR netip.Prefix) error {
	if Address(podNS).IsValid() {
		return nil
	}
	nh, err := netns.Handle(nodeNS)
	if err != nil {
		return err
	}
	defer nh.Close()
	eth0, err := netns.AddVeth(nh, PeerName(podNS), podNS)
	if err != nil {
		return fmt.Errorf("podnet: %w", err)
	}
	peer, err := nh.LinkByName(PeerName(podNS))
	if err != nil {
		return fmt.Errorf("podnet: %w", err)
	}
	gw := Gateway(podCIDR)
	// The node's end answers for the gateway; the pod's address is
	// routed to it.
	err = netns.EnsureAddr(nh, peer, netip.PrefixFrom(gw, 32))
	if err == nil {
		err = netns.LinkRoute(nh, peer, netip.PrefixFrom(ip, 32))
	}
	if err != nil {
		return fmt.Errorf("podnet: %s: %w", nodeNS, err)
	}
	ph, err := netns.Handle(podNS)
	if err != nil {
		return err
	}
	defer ph.Close()
	err = netns.EnsureAddr(ph, eth0, netip.PrefixFrom(ip, 32))
	if err == nil {
		err = netns.LinkRoute(ph, eth0, netip.PrefixFrom(gw, 32))
	}
	if err == nil {
		err = netns.DefaultRoute(ph, eth0, gw)
	}
	if err != nil {
		return fmt.Errorf("podnet: %s: %w", podNS, err)
	}
	return nil
}

// PeerName is the node-side name of a pod's veth.
func PeerName(podNS string) string { return netns.IfName("veth", podNS) }

// Address is the pod's eth0 address, or an invalid one if it has none.
func Address(podNS string) netip.Addr {
	h, err := netns.Handle(podNS)
	if err != nil {
		return netip.Addr{}
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := h.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(addrs[0].IP.To4())
	return a
}
