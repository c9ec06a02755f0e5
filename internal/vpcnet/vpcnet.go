// Package vpcnet builds VPC networks out of network namespaces: a network
// is a namespace that routes between its instances, each subnet a bridge
// in it holding the subnet's gateway address (its first host, as in
// Compute Engine). A node is attached by a veth whose end in the node's
// namespace is eth0 with the node's InternalIP; the node's pod range is
// routed to it (an alias IP range).
package vpcnet

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Attachment is a node on a subnet of a network.
type Attachment struct {
	// Network is the VPC network's namespace, Node the node's.
	Network, Node string
	// Subnet is the subnet's primary range; IP the node's address in it.
	Subnet netip.Prefix
	IP     netip.Addr
	// PodRange is routed to the node (none: a node without pods).
	PodRange netip.Prefix
}

// Gateway is a subnet's gateway address: its first host.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// EnsureNetwork creates a network's namespace, forwarding on.
func EnsureNetwork(network string) error {
	if err := netns.Create(network); err != nil {
		return err
	}
	return netns.SetSysctl(network, "net/ipv4/ip_forward", "1")
}

// Attach attaches a node to its subnet (creating the subnet's bridge on
// first use) and routes its pod range to it. It is idempotent.
func Attach(a Attachment) error {
	if err := EnsureNetwork(a.Network); err != nil {
		return err
	}
	if err := netns.Create(a.Node); err != nil {
		return err
	}
	vh, err := netns.Handle(a.Network)
	if err != nil {
		return err
	}
	defer vh.Close()
	br, err := netns.EnsureBridge(vh, bridgeName(a.Subnet))
	if err == nil {
		err = netns.EnsureAddr(vh, br, netip.PrefixFrom(Gateway(a.Subnet), a.Subnet.Bits()))
	}
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", a.Network, err)
	}
	nh, err := netns.Handle(a.Node)
	if err != nil {
		return err
	}
	defer nh.Close()
	eth0, err := nh.LinkByName("eth0")
	if err != nil {
		if eth0, err = netns.AddVeth(vh, peerName(a.Node), br, a.Node); err != nil {
			return fmt.Errorf("vpcnet: %w", err)
		}
	}
	err = netns.EnsureAddr(nh, eth0, netip.PrefixFrom(a.IP, a.Subnet.Bits()))
	if err == nil {
		err = netns.DefaultRoute(nh, eth0, Gateway(a.Subnet))
	}
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", a.Node, err)
	}
	if a.PodRange.IsValid() {
		if err := vh.RouteReplace(podRoute(br, a)); err != nil {
			return fmt.Errorf("vpcnet: %s: route %s to %s: %w", a.Network, a.PodRange, a.IP, err)
		}
	}
	return nil
}

// Detach takes the node off the network: its pod range's route and its
// veth go. The node's namespace stays (its owner deletes it).
func Detach(a Attachment) error {
	if !netns.Exists(a.Network) {
		return nil
	}
	vh, err := netns.Handle(a.Network)
	if err != nil {
		return err
	}
	defer vh.Close()
	if br, err := vh.LinkByName(bridgeName(a.Subnet)); err == nil && a.PodRange.IsValid() {
		if err := vh.RouteDel(podRoute(br, a)); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("vpcnet: %s: route %s: %w", a.Network, a.PodRange, err)
		}
	}
	if link, err := vh.LinkByName(peerName(a.Node)); err == nil {
		if err := vh.LinkDel(link); err != nil {
			return fmt.Errorf("vpcnet: %s: %w", a.Network, err)
		}
	}
	return nil
}

// RemoveNetwork deletes a network's namespace with all in it.
func RemoveNetwork(network string) error { return netns.Delete(network) }

func podRoute(br netlink.Link, a Attachment) *netlink.Route {
	return &netlink.Route{LinkIndex: br.Attrs().Index, Dst: netns.IPNet(a.PodRange.Masked()), Gw: netns.IP(a.IP)}
}

func bridgeName(subnet netip.Prefix) string { return netns.IfName("br", subnet.Masked().String()) }
func peerName(node string) string           { return netns.IfName("n", node) }

// Attached counts the nodes attached to a network (0 when it has no
// namespace).
func Attached(network string) (int, error) {
	if !netns.Exists(network) {
		return 0, nil
	}
	vh, err := netns.Handle(network)
	if err != nil {
		return 0, err
	}
	defer vh.Close()
	links, err := vh.LinkList()
	if err != nil {
		return 0, fmt.Errorf("vpcnet: %s: %w", network, err)
	}
	n := 0
	for _, l := range links {
		if l.Type() == "veth" {
			n++
		}
	}
	return n, nil
}
