// Package podnet wires pods to their node, as a CNI bridge plugin does: in
// the node's network namespace a bridge (cbr0) holds the first address of
// the node's pod range; each pod's namespace gets an eth0 (a veth whose
// peer hangs from the bridge) with the pod's address and a default route
// through the bridge.
package podnet

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Bridge is the name of the node's pod bridge.
const Bridge = "cbr0"

// Gateway is the bridge's address in a pod range: its first host.
func Gateway(podCIDR netip.Prefix) netip.Addr { return podCIDR.Masked().Addr().Next() }

// EnsureNode sets up the node's side: the bridge with the gateway address
// of its pod range, and forwarding on. It is idempotent.
func EnsureNode(nodeNS string, podCIDR netip.Prefix) error {
	h, err := netns.Handle(nodeNS)
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := netns.EnsureBridge(h, Bridge)
	if err == nil {
		err = netns.EnsureAddr(h, br, netip.PrefixFrom(Gateway(podCIDR), podCIDR.Bits()))
	}
	if err != nil {
		return fmt.Errorf("podnet: %s: %w", nodeNS, err)
	}
	return netns.SetSysctl(nodeNS, "net/ipv4/ip_forward", "1")
}

// AddPod gives the pod's namespace its eth0 with ip in the node's pod
// range, attached to the node's bridge. Adding a pod twice is adding it
// once.
func AddPod(nodeNS, podNS string, ip netip.Addr, podCIDR netip.Prefix) error {
	if Address(podNS).IsValid() {
		return nil
	}
	nh, err := netns.Handle(nodeNS)
	if err != nil {
		return err
	}
	defer nh.Close()
	br, err := nh.LinkByName(Bridge)
	if err != nil {
		return fmt.Errorf("podnet: %s has no bridge: %w", nodeNS, err)
	}
	eth0, err := netns.AddVeth(nh, PeerName(podNS), br, podNS)
	if err != nil {
		return fmt.Errorf("podnet: %w", err)
	}
	ph, err := netns.Handle(podNS)
	if err != nil {
		return err
	}
	defer ph.Close()
	err = netns.EnsureAddr(ph, eth0, netip.PrefixFrom(ip, podCIDR.Bits()))
	if err == nil {
		err = netns.DefaultRoute(ph, eth0, Gateway(podCIDR))
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
