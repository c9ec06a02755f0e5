// Package vpcnet builds VPC networks out of network namespaces: a network
// is a namespace that routes between its instances, as Compute Engine's
// virtual network does: every packet from one instance to another is
// routed by the network (where its firewall applies), never switched. A
// node is attached by a veth: its end in the node's namespace is eth0 with
// the node's InternalIP as a /32 (as Compute Engine gives it) and the
// subnet's gateway (its first host) as the way to everything; the
// network's end holds the gateway address and the routes to the node's
// address and its pod range (an alias IP range).
package vpcnet

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Attachment is a node on a subnet of a network.
type Attachment struct {
	// Network is the VPC network's namespace, Node the node's.
	Network, Node string
	// Subnet is the subnet's primary range; IP the node's address in it.
	Subnet netip.Prefix
	IP     netip.Addr
	// PodRange is routed to the node (none: a node without pods), as its
	// alias range, unless RoutesBased: then only the network's routes
	// (SetRoutes: the cluster's Compute routes) lead there.
	PodRange    netip.Prefix
	RoutesBased bool
}

// Gateway is a subnet's gateway address: its first host.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// EnsureNetwork creates a network's namespace, forwarding on. A packet
// between two pods of one node (intra-node visibility) leaves by the port
// it came in: routed so, not redirected (no ICMP redirect to the sender).
func EnsureNetwork(network string) error {
	if err := netns.Create(network); err != nil {
		return err
	}
	for key, value := range map[string]string{
		"net/ipv4/ip_forward":                  "1",
		"net/ipv4/conf/all/send_redirects":     "0",
		"net/ipv4/conf/default/send_redirects": "0",
	} {
		if err := netns.SetSysctl(network, key, value); err != nil {
			return err
		}
	}
	return nil
}

// Attach attaches a node to its subnet and routes its pod range to it.
// It is idempotent.
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
	nh, err := netns.Handle(a.Node)
	if err != nil {
		return err
	}
	defer nh.Close()
	eth0, err := nh.LinkByName("eth0")
	port, portErr := vh.LinkByName(Port(a.Node))
	if err != nil || portErr != nil {
		if eth0, err = netns.AddVeth(vh, Port(a.Node), a.Node); err != nil {
			return fmt.Errorf("vpcnet: %w", err)
		}
		if port, err = vh.LinkByName(Port(a.Node)); err != nil {
			return fmt.Errorf("vpcnet: %w", err)
		}
	}
	gw := Gateway(a.Subnet)
	err = netns.EnsureAddr(vh, port, netip.PrefixFrom(gw, 32))
	if err == nil {
		err = netns.LinkRoute(vh, port, netip.PrefixFrom(a.IP, 32))
	}
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", a.Network, err)
	}
	err = netns.EnsureAddr(nh, eth0, netip.PrefixFrom(a.IP, 32))
	if err == nil {
		err = netns.LinkRoute(nh, eth0, netip.PrefixFrom(gw, 32))
	}
	if err == nil {
		err = netns.DefaultRoute(nh, eth0, gw)
	}
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", a.Node, err)
	}
	if a.PodRange.IsValid() && !a.RoutesBased {
		if err := vh.RouteReplace(podRoute(port, a)); err != nil {
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
	if link, err := vh.LinkByName(Port(a.Node)); err == nil {
		// Its routes go with it.
		if err := vh.LinkDel(link); err != nil {
			return fmt.Errorf("vpcnet: %s: %w", a.Network, err)
		}
	}
	return nil
}

// RemoveNetwork deletes a network's namespace with all in it.
func RemoveNetwork(network string) error { return netns.Delete(network) }

func podRoute(port netlink.Link, a Attachment) *netlink.Route {
	return &netlink.Route{LinkIndex: port.Attrs().Index, Dst: netns.IPNet(a.PodRange.Masked()), Gw: netns.IP(a.IP)}
}

// Port is the name of a node's interface in its network's namespace.
func Port(node string) string { return netns.IfName("n", node) }

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

// Route is a route of the network: Dst through the instance at NextHop.
type Route struct {
	Dst     netip.Prefix
	NextHop netip.Addr
}

// routeProtocol marks the routes SetRoutes installs (rtnetlink's protocol
// field; the kernel's own are below 20).
const routeProtocol = 77

// SetRoutes makes routes the network's routes, besides its subnets' and
// its nodes' alias ranges: missing ones are added, others removed. A route
// whose next hop is no instance on the network carries nothing, as on
// Compute Engine, and is left out.
func SetRoutes(network string, routes []Route) error {
	if !netns.Exists(network) {
		return nil
	}
	vh, err := netns.Handle(network)
	if err != nil {
		return err
	}
	defer vh.Close()
	have, err := vh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", network, err)
	}
	want := map[string]Route{}
	for _, r := range routes {
		want[r.Dst.Masked().String()] = r
	}
	var errs []error
	for _, h := range have {
		w, ok := want[h.Dst.String()]
		if ok && h.Gw.Equal(netns.IP(w.NextHop)) {
			delete(want, h.Dst.String())
			continue
		}
		if err := vh.RouteDel(&h); err != nil {
			errs = append(errs, fmt.Errorf("vpcnet: %s: route %s: %w", network, h.Dst, err))
		}
	}
	for _, r := range want {
		route := &netlink.Route{Dst: netns.IPNet(r.Dst.Masked()), Gw: netns.IP(r.NextHop), Protocol: routeProtocol}
		if err := vh.RouteReplace(route); errors.Is(err, unix.ENETUNREACH) {
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("vpcnet: %s: route %s via %s: %w", network, r.Dst, r.NextHop, err))
		}
	}
	return errors.Join(errs...)
}
