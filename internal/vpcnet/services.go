package vpcnet

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// A network serves some addresses itself, as Google's front ends do inside
// a VPC: a cluster's internal endpoint and its internal load balancers.
// Each is an address on the network namespace's loopback, where the load
// balancer process listens; instances reach it through their gateway.

// AddService gives the network the address ip, creating the network's
// namespace if need be. It is idempotent.
func AddService(network string, ip netip.Addr) error {
	if err := EnsureNetwork(network); err != nil {
		return err
	}
	return onLoopback(network, func(h *netlink.Handle, lo netlink.Link) error {
		return netns.EnsureAddr(h, lo, netip.PrefixFrom(ip, 32))
	})
}

// RemoveService takes the address ip away from the network; an address or
// network that is not there is gone already.
func RemoveService(network string, ip netip.Addr) error {
	if !netns.Exists(network) {
		return nil
	}
	return onLoopback(network, func(h *netlink.Handle, lo netlink.Link) error {
		err := h.AddrDel(lo, &netlink.Addr{IPNet: netns.IPNet(netip.PrefixFrom(ip, 32))})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s: %w", ip, err)
		}
		return nil
	})
}

// onLoopback runs fn on the network namespace's loopback interface.
func onLoopback(network string, fn func(h *netlink.Handle, lo netlink.Link) error) error {
	h, err := netns.Handle(network)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = fn(h, lo)
	}
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", network, err)
	}
	return nil
}
