// Package runctest gives tests that run real containers what they need: a
// busybox root file system, a network namespace of their own, a runc root
// and a cgroup parent, all removed when the test ends.
package runctest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubeyard/kubeyard/internal/cgroups"
	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
	"github.com/kubeyard/kubeyard/internal/runc"
)

// Env is one test's containers' surroundings.
type Env struct {
	Dir    string
	Rootfs string // busybox: sh, sleep, cat, hostname, echo, stty, ...
	NetNS  string // /run/netns/<name>
	Runc   runc.Runtime
	// Cgroup is the parent of the test's containers' cgroups.
	Cgroup string
}

// New prepares an Env; it needs root, runc and Debian's busybox-static.
func New(t testing.TB) *Env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("running containers needs root")
	}
	img := Busybox(t, v1.Config{})
	e := &Env{Dir: t.TempDir()}
	e.Rootfs = filepath.Join(e.Dir, "rootfs")
	if err := os.Mkdir(e.Rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := images.Unpack(img, e.Rootfs); err != nil {
		t.Fatal(err)
	}
	sweepCgroups()
	name := netnstest.Name(t, "pod")
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	e.NetNS = netns.Path(name)
	e.Runc = runc.Runtime{Root: filepath.Join(e.Dir, "runc")}
	e.Cgroup = "/" + name
	t.Cleanup(func() {
		if list, _ := e.Runc.List(t.Context()); len(list) > 0 {
			for _, c := range list {
				_ = e.Runc.Delete(t.Context(), c.ID, true)
			}
		}
		_ = cgroups.Remove("/" + name)
	})
	return e
}

// Busybox is an image of Debian's static busybox with its applets
// (sh, sleep, cat, hostname, echo, env, stty, wget, nc, ...) and cfg.
func Busybox(t testing.TB, cfg v1.Config) v1.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("Debian's busybox-static is needed: %v", err)
	}
	files := map[string]images.File{"bin/busybox": {Data: bb, Mode: 0o755}}
	for _, a := range []string{"sh", "sleep", "cat", "hostname", "echo", "env", "id", "head", "dd", "yes", "stty", "tty", "wget", "nc", "touch", "kill", "rm", "ls", "mkdir", "test", "httpd"} {
		files["bin/"+a] = images.File{Link: "busybox"}
	}
	img, err := images.Build(files, cfg, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// sweepCgroups removes the cgroups of test processes that are gone (their
// namespaces netnstest sweeps).
func sweepCgroups() {
	for _, name := range cgroups.Named(netnstest.Prefix) {
		pid, _, _ := strings.Cut(strings.TrimPrefix(name, netnstest.Prefix), "-")
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			_ = cgroups.Remove("/" + name)
		}
	}
}

// Container is a container of the Env running args.
func (e *Env) Container(id string, args ...string) runc.Container {
	return runc.Container{ID: id, Rootfs: e.Rootfs, Args: args, Env: []string{"PATH=/bin"}, Hostname: "pod-1",
		NetNS: e.NetNS, CgroupsPath: e.Cgroup + "/" + id}
}

// MemoryCgroup is a container's memory cgroup folder.
func (e *Env) MemoryCgroup(c runc.Container) string {
	return cgroups.MemoryDir(c.CgroupsPath)
}
