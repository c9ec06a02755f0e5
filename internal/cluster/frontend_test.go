package cluster

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/loadbalancer"
)

// As an IP rotation starts, the old address moves from the cluster's
// frontend file to the old endpoint's: at no moment may the load
// balancer's folder lack it, or the load balancer drops the frontend
// and the connections of every client on the old address.
func TestRotationStartKeepsTheOldAddress(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{cfg: Config{LoadBalancerDir: dir}}
	s := Spec{Cluster: controlplane.Cluster{Name: "ha", EndpointIP: net.ParseIP("127.10.0.2")}, ID: "c1",
		Hosts: []controlplane.Host{{IP: net.ParseIP("127.11.0.2")}}}
	if err := r.writeFrontend(s); err != nil {
		t.Fatal(err)
	}
	old := s.frontendAddr(s.EndpointIP)
	var states []string // the addresses in the folder after each write
	writeFrontendFile = func(dir, name string, f loadbalancer.Frontend) error {
		if err := loadbalancer.WriteFrontend(dir, name, f); err != nil {
			return err
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		var addrs []string
		for _, file := range files {
			fe, err := loadbalancer.ReadFrontend(dir, strings.TrimSuffix(filepath.Base(file), ".json"))
			if err == nil {
				addrs = append(addrs, fe.Addr)
			}
		}
		states = append(states, strings.Join(addrs, " "))
		return nil
	}
	defer func() { writeFrontendFile = loadbalancer.WriteFrontend }()

	s.OldEndpointIP, s.EndpointIP = s.EndpointIP, net.ParseIP("127.10.0.3")
	if err := r.writeFrontend(s); err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 {
		t.Fatalf("%d frontend files written, want the cluster's and the old endpoint's: %q", len(states), states)
	}
	for i, addrs := range states {
		if !strings.Contains(addrs, old) {
			t.Errorf("after write %d the folder serves %q: the old address %s is gone", i+1, addrs, old)
		}
	}
}
