package netd_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/netd"
	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
	"github.com/kubeyard/kubeyard/internal/podnet"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// Two pods of one node: with netd's routing on, their packets to each
// other cross the VPC network (its port for the node counts them) and
// still arrive; off again, they stay on the node.
func TestSameNodeTrafficTakesTheNetwork(t *testing.T) {
	network, node := netnstest.Name(t, "vpc"), netnstest.Name(t, "node")
	a := vpcnet.Attachment{Network: network, Node: node, Subnet: netip.MustParsePrefix("10.128.0.0/20"),
		IP: netip.MustParseAddr("10.128.0.2"), PodRange: netip.MustParsePrefix("10.4.0.0/24")}
	if err := vpcnet.Attach(a); err != nil {
		t.Fatal(err)
	}
	if err := podnet.EnsureNode(node, a.PodRange); err != nil {
		t.Fatal(err)
	}
	pod1, pod2 := netnstest.Name(t, "pod1"), netnstest.Name(t, "pod2")
	ip1, ip2 := netip.MustParseAddr("10.4.0.2"), netip.MustParseAddr("10.4.0.3")
	for _, p := range []struct {
		ns string
		ip netip.Addr
	}{{pod1, ip1}, {pod2, ip2}} {
		if err := netns.Create(p.ns); err != nil {
			t.Fatal(err)
		}
		if err := podnet.AddPod(node, p.ns, p.ip, a.PodRange); err != nil {
			t.Fatal(err)
		}
	}
	netnstest.Listen(t, pod2, netip.AddrPortFrom(ip2, 8080))
	netnstest.Listen(t, node, netip.AddrPortFrom(a.IP, 8080))
	h, err := netns.Handle(node)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	// crossed dials pod-1 to pod-2 and says how many packets the network
	// took from the node meanwhile.
	crossed := func(t *testing.T) uint64 {
		t.Helper()
		before := portPackets(t, network, a.Node)
		if got, err := netnstest.Dial(pod1, netip.AddrPortFrom(ip2, 8080), 2*time.Second); err != nil || got != ip1.String() {
			t.Fatalf("pod-1 to pod-2: %q %v", got, err)
		}
		return portPackets(t, network, a.Node) - before
	}
	if n := crossed(t); n != 0 {
		t.Errorf("off: %d packets crossed the network", n)
	}
	if err := netd.Applied(h); err == nil {
		t.Error("Applied before Apply")
	}
	for range 2 { // idempotent
		if err := netd.Apply(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := netd.Applied(h); err != nil {
		t.Fatal(err)
	}
	// A TCP exchange is at least 5 packets from the node each way.
	if n := crossed(t); n < 5 {
		t.Errorf("on: %d packets crossed the network, want every one of the exchange", n)
	}
	// What the node itself sends to its pods stays on the node.
	before := portPackets(t, network, a.Node)
	if _, err := netnstest.Dial(node, netip.AddrPortFrom(ip2, 8080), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := portPackets(t, network, a.Node) - before; n != 0 {
		t.Errorf("on: the node's own connection to a pod sent %d packets to the network", n)
	}
	// Pods still reach their node.
	if _, err := netnstest.Dial(pod1, netip.AddrPortFrom(a.IP, 8080), 2*time.Second); err != nil {
		t.Errorf("on: pod-1 to its node: %v", err)
	}
	for range 2 {
		if err := netd.Remove(h); err != nil {
			t.Fatal(err)
		}
	}
	if n := crossed(t); n != 0 {
		t.Errorf("off again: %d packets crossed the network", n)
	}
}

// portPackets counts the packets the network received from the node.
func portPackets(t *testing.T, network, node string) uint64 {
	t.Helper()
	h, err := netns.Handle(network)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(vpcnet.Port(node))
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.RxPackets
}
