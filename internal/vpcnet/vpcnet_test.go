package vpcnet_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
	"github.com/kubeyard/kubeyard/internal/podnet"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// Two nodes on a subnet of a network, two pods on each: every pod reaches
// every other, on its node and across, and the host's own network is
// untouched.
func TestPodsReachEachOther(t *testing.T) {
	hostLinks := links(t)
	network := netnstest.Name(t, "vpc")
	subnet := netip.MustParsePrefix("10.128.0.0/20")
	type pod struct {
		ns string
		ip netip.Addr
	}
	var pods []pod
	for i, podRange := range []string{"10.4.0.0/24", "10.4.1.0/24"} {
		node := netnstest.Name(t, fmt.Sprint("node", i))
		a := vpcnet.Attachment{Network: network, Node: node, Subnet: subnet, IP: netip.MustParseAddr(fmt.Sprintf("10.128.0.%d", 2+i)), PodRange: netip.MustParsePrefix(podRange)}
		for range 2 { // idempotent
			if err := vpcnet.Attach(a); err != nil {
				t.Fatal(err)
			}
			if err := podnet.EnsureNode(node, a.PodRange); err != nil {
				t.Fatal(err)
			}
		}
		for j := range 2 {
			p := pod{ns: netnstest.Name(t, fmt.Sprintf("pod%d%d", i, j)), ip: a.PodRange.Addr().Next().Next()}
			for range j {
				p.ip = p.ip.Next()
			}
			if err := netns.Create(p.ns); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := podnet.AddPod(node, p.ns, p.ip, a.PodRange); err != nil {
					t.Fatal(err)
				}
			}
			if got := podnet.Address(p.ns); got != p.ip {
				t.Fatalf("%s has address %v, want %v", p.ns, got, p.ip)
			}
			pods = append(pods, p)
		}
	}
	for _, to := range pods {
		listen(t, to.ns, to.ip)
		for _, from := range pods {
			if from == to {
				continue
			}
			if err := dialFrom(from.ns, to.ip, from.ip); err != nil {
				t.Errorf("%s to %s: %v", from.ip, to.ip, err)
			}
		}
	}
	if after := links(t); !slices.Equal(after, hostLinks) {
		t.Errorf("the host's interfaces changed: %v, then %v", hostLinks, after)
	}
}

// A detached node is unreachable; its network can be removed.
func TestDetach(t *testing.T) {
	network := netnstest.Name(t, "vpc")
	subnet := netip.MustParsePrefix("10.128.0.0/20")
	var nodes []vpcnet.Attachment
	for i := range 2 {
		a := vpcnet.Attachment{Network: network, Node: netnstest.Name(t, fmt.Sprint("node", i)), Subnet: subnet,
			IP: netip.MustParseAddr(fmt.Sprintf("10.128.0.%d", 2+i)), PodRange: netip.MustParsePrefix(fmt.Sprintf("10.4.%d.0/24", i))}
		if err := vpcnet.Attach(a); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, a)
	}
	listen(t, nodes[1].Node, nodes[1].IP)
	if err := dialFrom(nodes[0].Node, nodes[1].IP, nodes[0].IP); err != nil {
		t.Fatal(err)
	}
	if n, err := vpcnet.Attached(network); n != 2 || err != nil {
		t.Errorf("attached: %d %v", n, err)
	}
	for range 2 {
		if err := vpcnet.Detach(nodes[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := dialFrom(nodes[0].Node, nodes[1].IP, nodes[0].IP); err == nil {
		t.Error("a detached node is still reachable")
	}
	if n, err := vpcnet.Attached(network); n != 1 || err != nil {
		t.Errorf("attached after one detached: %d %v", n, err)
	}
	h, err := netns.Handle(network)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	routes, _ := h.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "10.4.1.0/24" {
			t.Errorf("the detached node's pod range is still routed: %v", r)
		}
	}
	if err := vpcnet.RemoveNetwork(network); err != nil || netns.Exists(network) {
		t.Errorf("remove: %v", err)
	}
}

func links(t *testing.T) []string {
	t.Helper()
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

func listen(t *testing.T, ns string, ip netip.Addr) {
	netnstest.Listen(t, ns, netip.AddrPortFrom(ip, 8080))
}

// dialFrom connects from ns to ip's listener, which must see from.
func dialFrom(ns string, ip netip.Addr, from netip.Addr) error {
	got, err := netnstest.Dial(ns, netip.AddrPortFrom(ip, 8080), time.Second)
	if err != nil {
		return err
	}
	if got != from.String() {
		return fmt.Errorf("seen as %s, not %s", got, from)
	}
	return nil
}

// A routes-based node's pod range is reached only through the network's
// routes: none, no way there; a route to it, the way; the route gone, no
// way again. A route to an address no instance has is left out.
func TestRoutes(t *testing.T) {
	network := netnstest.Name(t, "vpc")
	subnet := netip.MustParsePrefix("10.128.0.0/20")
	var nodes []vpcnet.Attachment
	var pods []string
	for i := range 2 {
		a := vpcnet.Attachment{Network: network, Node: netnstest.Name(t, fmt.Sprint("node", i)), Subnet: subnet,
			IP: netip.MustParseAddr(fmt.Sprintf("10.128.0.%d", 2+i)), PodRange: netip.MustParsePrefix(fmt.Sprintf("10.4.%d.0/24", i)), RoutesBased: true}
		if err := vpcnet.Attach(a); err != nil {
			t.Fatal(err)
		}
		if err := podnet.EnsureNode(a.Node, a.PodRange); err != nil {
			t.Fatal(err)
		}
		pod := netnstest.Name(t, fmt.Sprint("pod", i))
		if err := netns.Create(pod); err != nil {
			t.Fatal(err)
		}
		if err := podnet.AddPod(a.Node, pod, a.PodRange.Addr().Next().Next(), a.PodRange); err != nil {
			t.Fatal(err)
		}
		nodes, pods = append(nodes, a), append(pods, pod)
	}
	to := nodes[1].PodRange.Addr().Next().Next()
	from := nodes[0].PodRange.Addr().Next().Next()
	listen(t, pods[1], to)
	if err := dialFrom(pods[0], to, from); err == nil {
		t.Fatal("a routes-based node's pods are reachable without a route")
	}
	routes := []vpcnet.Route{
		{Dst: nodes[0].PodRange, NextHop: nodes[0].IP}, {Dst: nodes[1].PodRange, NextHop: nodes[1].IP},
		{Dst: netip.MustParsePrefix("10.9.0.0/24"), NextHop: netip.MustParseAddr("10.200.0.9")},
	}
	for range 2 {
		if err := vpcnet.SetRoutes(network, routes); err != nil {
			t.Fatal(err)
		}
	}
	if err := dialFrom(pods[0], to, from); err != nil {
		t.Fatalf("with the routes: %v", err)
	}
	if err := vpcnet.SetRoutes(network, routes[:1]); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(pods[0], to, from); err == nil {
		t.Error("node 1's route is gone, and its pod is still reachable")
	}
}

// Two networks reach each other only through a peering: routes through it
// make the link between their namespaces; without them there is none.
// A peering's link does not count as a node.
func TestPeering(t *testing.T) {
	var nets []vpcnet.Attachment
	for i := range 2 {
		a := vpcnet.Attachment{Network: netnstest.Name(t, fmt.Sprint("vpc", i)), Node: netnstest.Name(t, fmt.Sprint("node", i)),
			Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/20", 10+i)), IP: netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", 10+i))}
		if err := vpcnet.Attach(a); err != nil {
			t.Fatal(err)
		}
		nets = append(nets, a)
	}
	a, b := nets[0], nets[1]
	listen(t, b.Node, b.IP)
	if err := dialFrom(a.Node, b.IP, a.IP); err == nil {
		t.Fatal("networks that are not peered reach each other")
	}
	peer := func(from, to vpcnet.Attachment) {
		t.Helper()
		if err := vpcnet.SetRoutes(from.Network, []vpcnet.Route{{Dst: to.Subnet, Peer: to.Network}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		peer(a, b)
		peer(b, a)
	}
	if err := dialFrom(a.Node, b.IP, a.IP); err != nil {
		t.Fatalf("peered: %v", err)
	}
	if n, err := vpcnet.Attached(a.Network); n != 1 || err != nil {
		t.Errorf("attached with a peering: %d %v", n, err)
	}
	if err := vpcnet.SetRoutes(a.Network, nil); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(a.Node, b.IP, a.IP); err == nil {
		t.Error("the peering is gone, and the networks still reach each other")
	}
}

// An address the network serves itself is reached from its nodes through
// their gateway, and keeps the network in use once no node is attached.
func TestServices(t *testing.T) {
	network := netnstest.Name(t, "vpc")
	a := vpcnet.Attachment{Network: network, Node: netnstest.Name(t, "node"), Subnet: netip.MustParsePrefix("10.128.0.0/20"), IP: netip.MustParseAddr("10.128.0.2")}
	if err := vpcnet.Attach(a); err != nil {
		t.Fatal(err)
	}
	service := netip.MustParseAddr("10.128.0.9")
	for range 2 { // idempotent
		if err := vpcnet.AddService(network, service); err != nil {
			t.Fatal(err)
		}
	}
	listen(t, network, service)
	if err := dialFrom(a.Node, service, a.IP); err != nil {
		t.Fatalf("the node does not reach the network's address: %v", err)
	}
	if err := vpcnet.Detach(a); err != nil {
		t.Fatal(err)
	}
	if unused, err := vpcnet.Unused(network); unused || err != nil {
		t.Errorf("a network that serves an address is unused: %v %v", unused, err)
	}
	for range 2 {
		if err := vpcnet.RemoveService(network, service); err != nil {
			t.Fatal(err)
		}
	}
	if unused, err := vpcnet.Unused(network); !unused || err != nil {
		t.Errorf("a network with no node and no address is in use: %v %v", unused, err)
	}
}
