package cluster

import (
	"net"
	"slices"
	"testing"

	"github.com/kubeyard/kubeyard/internal/controlplane"
)

// A zonal cluster's lone etcd member elects itself quickly; a regional
// cluster's members keep etcd's timings, the same on every member.
func TestLoneEtcdMember(t *testing.T) {
	hosts := []controlplane.Host{{Index: 0, IP: net.ParseIP("127.0.0.2")}, {Index: 1, IP: net.ParseIP("127.0.0.3")}, {Index: 2, IP: net.ParseIP("127.0.0.4")}}
	for _, tc := range []struct {
		name  string
		hosts []controlplane.Host
		lone  bool
	}{{"zonal", hosts[:1], true}, {"regional", hosts, false}} {
		s := Spec{Cluster: controlplane.Cluster{Name: "c", Dir: t.TempDir()}, Hosts: tc.hosts}
		for _, h := range tc.hosts {
			etcd, err := stackedMember(s, h)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Contains(etcd.Args, "--election-timeout=200"); got != tc.lone {
				t.Errorf("%s, host %d: quick election %v, want %v: %v", tc.name, h.Index, got, tc.lone, etcd.Args)
			}
		}
	}
}
