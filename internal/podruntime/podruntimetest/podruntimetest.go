// Package podruntimetest gives tests a real node runtime: an image store
// holding busybox, a node network namespace of the test's own, this test
// binary as the shim (see Main), and checks at the end that nothing the
// runtime made is left.
package podruntimetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubeyard/kubeyard/internal/cgroups"
	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/runc/runctest"
	"github.com/kubeyard/kubeyard/internal/shim"
)

// Main is a test binary's TestMain: it runs as the shim when the runtime
// starts it as one, and runs the tests otherwise.
func Main(m *testing.M) {
	if len(os.Args) > 1 && strings.HasSuffix(os.Args[1], "shim.json") {
		os.Exit(shim.Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// BusyboxConfig is the config of the store's busybox image.
var BusyboxConfig = v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "FROM_IMAGE=1", "GREETING=image"}}

// New returns a node's runtime whose store holds busybox (as
// docker.io/library/busybox:latest), and the name of its node's network
// namespace. At the end of the test its sandboxes are removed and
// nothing may be left: no mount under its folder, no cgroup.
func New(t *testing.T) (*podruntime.Runtime, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := images.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add("busybox", runctest.Busybox(t, BusyboxConfig)); err != nil {
		t.Fatal(err)
	}
	nodeNS := netnstest.Name(t, "node")
	if err := netns.Create(nodeNS); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	rt, err := podruntime.New(podruntime.Config{
		Dir: filepath.Join(dir, "node"), Images: store, Snapshots: &images.Snapshots{Dir: filepath.Join(dir, "snapshots")},
		Shim: self, NodeNS: nodeNS, CgroupParent: "/" + nodeNS,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sbs, _ := rt.Sandboxes()
		for _, sb := range sbs {
			if err := rt.RemoveSandbox(context.Background(), sb.UID); err != nil {
				t.Error(err)
			}
		}
		if dirs := cgroups.Dirs("/" + nodeNS); len(dirs) > 0 {
			_ = cgroups.Remove("/" + nodeNS)
		}
		if mounts, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(mounts), dir) {
			t.Errorf("mounts left under %s", dir)
		}
	})
	return rt, nodeNS
}
