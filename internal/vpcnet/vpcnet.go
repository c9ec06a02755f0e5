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
	"hash/fnv"
	"net/netip"
	"strings"

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
	nodes, _, err := users(network)
	return nodes, err
}

// Unused says whether nothing uses the network's namespace any more: no
// node is attached and it serves no address (AddService).
func Unused(network string) (bool, error) {
	nodes, services, err := users(network)
	return nodes == 0 && services == 0, err
}

// users counts the network's nodes and the addresses it serves.
func users(network string) (nodes, services int, err error) {
	if !netns.Exists(network) {
		return 0, 0, nil
	}
	vh, err := netns.Handle(network)
	if err != nil {
		return 0, 0, err
	}
	defer vh.Close()
	links, err := vh.LinkList()
	if err != nil {
		return 0, 0, fmt.Errorf("vpcnet: %s: %w", network, err)
	}
	for _, l := range links {
		switch {
		case l.Type() == "veth" && strings.HasPrefix(l.Attrs().Name, "n"):
			nodes++ // nodes' ports, not peerings' links
		case l.Attrs().Name == "lo":
			addrs, err := vh.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return 0, 0, fmt.Errorf("vpcnet: %s: %w", network, err)
			}
			for _, a := range addrs {
				if !a.IP.IsLoopback() {
					services++
				}
			}
		}
	}
	return nodes, services, nil
}

// Route is a route of the network: Dst through the instance at NextHop,
// or, with Peer (a peered network's namespace), through the peering.
type Route struct {
	Dst     netip.Prefix
	NextHop netip.Addr
	Peer    string
}

// routeProtocol marks the routes SetRoutes installs (rtnetlink's protocol
// field; the kernel's own are below 20).
const routeProtocol = 77

// SetRoutes makes routes the network's routes, besides its subnets' and
// its nodes' alias ranges: missing ones are added, others removed. A route
// whose next hop is no instance on the network carries nothing, as on
// Compute Engine, and is left out, as is one through a peering with a
// network that has no namespace (nothing to reach there). The peerings
// routes go through are links between the two namespaces, made as
// needed; links to networks no route goes to are taken away.
func SetRoutes(network string, routes []Route) error {
	if !netns.Exists(network) {
		return nil
	}
	vh, err := netns.Handle(network)
	if err != nil {
		return err
	}
	defer vh.Close()
	peers := map[string]bool{}
	for _, r := range routes {
		if r.Peer != "" && netns.Exists(r.Peer) {
			peers[r.Peer] = true
		}
	}
	if err := setPeers(vh, network, peers); err != nil {
		return err
	}
	have, err := vh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", network, err)
	}
	want := map[string]*netlink.Route{}
	for _, r := range routes {
		route := &netlink.Route{Dst: netns.IPNet(r.Dst.Masked()), Gw: netns.IP(r.NextHop), Protocol: routeProtocol}
		if r.Peer != "" {
			if !peers[r.Peer] {
				continue
			}
			link, err := vh.LinkByName(peerLink(r.Peer))
			if err != nil {
				return fmt.Errorf("vpcnet: %s: the peering with %s: %w", network, r.Peer, err)
			}
			route.LinkIndex, route.Gw, route.Flags = link.Attrs().Index, netns.IP(peerAddr(r.Peer, network)), int(netlink.FLAG_ONLINK)
		}
		want[r.Dst.Masked().String()] = route
	}
	var errs []error
	for _, h := range have {
		w, ok := want[h.Dst.String()]
		if ok && h.Gw.Equal(w.Gw) && (w.LinkIndex == 0 || w.LinkIndex == h.LinkIndex) {
			delete(want, h.Dst.String())
			continue
		}
		if err := vh.RouteDel(&h); err != nil {
			errs = append(errs, fmt.Errorf("vpcnet: %s: route %s: %w", network, h.Dst, err))
		}
	}
	for _, route := range want {
		if err := vh.RouteReplace(route); errors.Is(err, unix.ENETUNREACH) {
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("vpcnet: %s: route %s via %s: %w", network, route.Dst, route.Gw, err))
		}
	}
	return errors.Join(errs...)
}

// A peering between two networks is a veth pair between their namespaces:
// in each, the end named after the other network (peerLink), holding an
// address of its own in 169.254.0.0/16 (peerAddr), which the other side's
// routes through the peering have as their gateway.

// peerLink names, in a network's namespace, its end of the link to peer.
func peerLink(peer string) string { return netns.IfName("p", peer) }

// peerAddr is the address of network's end of its link to peer.
func peerAddr(network, peer string) netip.Addr {
	h := fnv.New32a()
	h.Write([]byte(network + "\x00" + peer))
	v := h.Sum32()
	return netip.AddrFrom4([4]byte{169, 254, byte(v >> 8), byte(v)})
}

// setPeers makes the links from network (vh) to peers, and takes away its
// links to other networks.
func setPeers(vh *netlink.Handle, network string, peers map[string]bool) error {
	links, err := vh.LinkList()
	if err != nil {
		return fmt.Errorf("vpcnet: %s: %w", network, err)
	}
	have := map[string]bool{}
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() != "veth" || !strings.HasPrefix(name, "p") {
			continue
		}
		have[name] = true
	}
	for peer := range peers {
		if have[peerLink(peer)] {
			delete(have, peerLink(peer))
			continue
		}
		if err := addPeerLink(vh, network, peer); err != nil {
			return err
		}
	}
	for name := range have { // links to networks no longer peered
		if l, err := vh.LinkByName(name); err == nil {
			_ = vh.LinkDel(l)
		}
	}
	return nil
}

// addPeerLink links network (vh) with peer: the pair, up, an address at
// each end.
func addPeerLink(vh *netlink.Handle, network, peer string) error {
	peerFile, err := netns.Open(peer)
	if err != nil {
		return err
	}
	defer peerFile.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: peerLink(peer)}, PeerName: peerLink(network), PeerNamespace: netlink.NsFd(int(peerFile))}
	if err := vh.LinkAdd(veth); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vpcnet: peering %s with %s: %w", network, peer, err)
	}
	ph, err := netns.Handle(peer)
	if err != nil {
		return err
	}
	defer ph.Close()
	for _, end := range []struct {
		h          *netlink.Handle
		name, self string
		other      string
	}{{vh, peerLink(peer), network, peer}, {ph, peerLink(network), peer, network}} {
		link, err := end.h.LinkByName(end.name)
		if err == nil {
			err = end.h.LinkSetUp(link)
		}
		if err == nil {
			err = netns.EnsureAddr(end.h, link, netip.PrefixFrom(peerAddr(end.self, end.other), 32))
		}
		if err != nil {
			return fmt.Errorf("vpcnet: peering %s with %s: %w", network, peer, err)
		}
	}
	return nil
}
