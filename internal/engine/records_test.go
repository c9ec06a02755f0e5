package engine

import (
	"context"
	"net/netip"
	"testing"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/store"
)

func TestAllocatorSkipsTaken(t *testing.T) {
	a := &allocator{taken: map[string]bool{"allocations/endpoint/127.10.0.2": true}}
	ip, err := a.ip("endpoint", netip.MustParsePrefix("127.10.0.0/16"), 2)
	if err != nil || ip.String() != "127.10.0.3" {
		t.Fatalf("got %v %v, want 127.10.0.3", ip, err)
	}
	full := netip.MustParsePrefix("127.12.0.0/30")
	if _, err := a.ip("x", full, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ip("x", full, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ip("x", full, 2); err == nil {
		t.Fatal("a full range must be an error")
	}
	b1, _ := a.block("pods", netip.MustParsePrefix("10.0.0.0/9"), 14)
	b2, _ := a.block("pods", netip.MustParsePrefix("10.0.0.0/9"), 14)
	if b1.String() != "10.0.0.0/14" || b2.String() != "10.4.0.0/14" {
		t.Fatalf("blocks %v %v", b1, b2)
	}
	if len(a.got) != 5 {
		t.Fatalf("got: %v", a.got)
	}
}

// A record's writes take the allocations it gained since it was read
// (absent: no other owner) and free those it lost, with the record.
func TestRecordWritesItsAllocations(t *testing.T) {
	r := &ClusterRecord{Project: "p", Location: "us-central1-a", Cluster: &container.Cluster{Name: "c"},
		Allocations: []string{"allocations/a", "allocations/b"}}
	r.committed()
	r.Allocations = []string{"allocations/b", "allocations/c", "allocations/c"}
	got := map[string]store.Write{}
	for _, w := range r.writes(7) {
		got[w.Key] = w
	}
	if w := got[r.key()]; w.Value != r || w.Revision != 7 {
		t.Errorf("record write %+v", w)
	}
	if w, ok := got["allocations/c"]; !ok || w.Value != r.key() || w.Revision != store.Absent {
		t.Errorf("a new allocation: %+v", w)
	}
	if w, ok := got["allocations/a"]; !ok || w.Value != nil {
		t.Errorf("a freed allocation: %+v", w)
	}
	if _, ok := got["allocations/b"]; ok || len(got) != 3 {
		t.Errorf("writes %v: an allocation held still is not written again, and one given twice once", got)
	}
	del := r.deletion(8)
	if del[0].Key != r.key() || del[0].Value != nil || len(del) != 3 {
		t.Errorf("deletion %+v", del)
	}
}

func TestLabelFingerprintIsOrderFree(t *testing.T) {
	a := labelFingerprint(map[string]string{"a": "1", "b": "2"})
	b := labelFingerprint(map[string]string{"b": "2", "a": "1"})
	if a != b || len(a) != 8 || a == labelFingerprint(nil) {
		t.Fatalf("%s %s", a, b)
	}
}

func TestAllocatorSkipsAddressesInUse(t *testing.T) {
	busy := netip.MustParseAddr("127.10.0.2")
	a := &allocator{taken: map[string]bool{}, listening: func(addr netip.Addr, port int) bool { return addr == busy && port == 443 }}
	ip, err := a.ip("endpoint", netip.MustParsePrefix("127.10.0.0/16"), 2, 443)
	if err != nil || ip.String() != "127.10.0.3" {
		t.Fatalf("got %v %v: an address in use was handed out", ip, err)
	}
}

// Blocks of different sizes in one kind never overlap, and a block avoids
// the ranges it is told to.
func TestAllocatorBlocksOfMixedSizes(t *testing.T) {
	a := &allocator{taken: map[string]bool{}}
	if !a.claim("pods/p/n", netip.MustParsePrefix("10.4.0.0/16")) {
		t.Fatal("claim of a free block refused")
	}
	if a.claim("pods/p/n", netip.MustParsePrefix("10.4.128.0/20")) {
		t.Fatal("a block inside a taken one was claimed")
	}
	if !a.claim("pods/p/other", netip.MustParsePrefix("10.4.128.0/20")) {
		t.Fatal("another kind's blocks got in the way")
	}
	avoid := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}
	b, err := a.blockAvoiding("pods/p/n", netip.MustParsePrefix("10.0.0.0/8"), 14, avoid)
	if err != nil || b.String() != "10.8.0.0/14" {
		t.Fatalf("got %v %v, want 10.8.0.0/14 (10.0/14 holds an avoided range, 10.4/14 a taken block)", b, err)
	}
}

// A pool of the most nodes a pool may have gets them all, each with a name
// of its own: four random hex digits draw the same ones about eight times
// among 1,000.
func TestThousandNodesHaveNamesOfTheirOwn(t *testing.T) {
	g := newRig(t)
	g.createCluster("c1", 1)
	g.wait(g.e.SetNodePoolSize(context.Background(), project, zone, "c1", "default-pool", MaxNodesPerPool))
	names := map[string]bool{}
	for _, n := range g.cluster("c1").Nodes["default-pool"] {
		names[n.Name] = true
	}
	if len(names) != MaxNodesPerPool {
		t.Fatalf("%d node names for %d nodes", len(names), MaxNodesPerPool)
	}
}

// Only a zonal control plane's etcd, one member, beats slower: regional
// and external members keep etcd's quick elections.
func TestOnlyAZonalEtcdIsLone(t *testing.T) {
	e := &Engine{}
	for _, c := range []struct {
		hosts, etcdHosts []string
		lone             bool
	}{
		{[]string{"127.11.0.2"}, nil, true},
		{[]string{"127.11.0.2", "127.11.0.3", "127.11.0.4"}, nil, false},
		{[]string{"127.11.0.2"}, []string{"127.11.0.5", "127.11.0.6", "127.11.0.7"}, false},
	} {
		r := &ClusterRecord{Cluster: &container.Cluster{Name: "c"}, HostIPs: c.hosts, EtcdHostIPs: c.etcdHosts}
		if got := e.spec(r).LoneEtcd; got != c.lone {
			t.Errorf("%d replicas, %d external members: LoneEtcd %v, want %v", len(c.hosts), len(c.etcdHosts), got, c.lone)
		}
	}
}
