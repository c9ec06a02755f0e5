package runc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubeyard/kubeyard/internal/images"
)

// The spec of a container: its namespaces (the pod's network namespace
// shared), capabilities changed as asked, limits as cgroups.
func TestSpec(t *testing.T) {
	s := Spec(Container{ID: "c1", Rootfs: "/r", Args: []string{"sh"}, Hostname: "pod-1", NetNS: "/run/netns/pod", UID: 1000, GID: 1000,
		AddCaps: []string{"NET_ADMIN"}, DropCaps: []string{"NET_RAW"}, MemoryLimit: 64 << 20, CPUMillis: 500, ReadOnlyRoot: true,
		Mounts: []Mount{{Source: "/v", Destination: "/data", ReadOnly: true}}, CgroupsPath: "/kubeyard/c1"})
	if s.Hostname != "pod-1" || !s.Root.Readonly || s.Process.User.UID != 1000 || s.Process.Cwd != "/" {
		t.Errorf("process and root: %+v %+v", s.Process, s.Root)
	}
	var netns string
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" {
			netns = ns.Path
		}
	}
	if netns != "/run/netns/pod" || len(s.Linux.Namespaces) != 5 {
		t.Errorf("namespaces: %+v", s.Linux.Namespaces)
	}
	caps := strings.Join(s.Process.Capabilities.Bounding, ",")
	if !strings.Contains(caps, "CAP_NET_ADMIN") || strings.Contains(caps, "CAP_NET_RAW") || !strings.Contains(caps, "CAP_CHOWN") {
		t.Errorf("capabilities: %s", caps)
	}
	if *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.CPU.Quota != 50000 {
		t.Errorf("resources: %+v", s.Linux.Resources)
	}
	if last := s.Mounts[len(s.Mounts)-1]; last.Destination != "/data" || last.Options[len(last.Options)-1] != "ro" {
		t.Errorf("volume mount: %+v", last)
	}
	if got := capabilities(nil, []string{"ALL"}); len(got) != 0 {
		t.Errorf("drop ALL: %v", got)
	}
}

// A container runs for real: from an image unpacked, in a network
// namespace of its own, with its hostname and memory limit; its output
// goes where it is told; killed and deleted, nothing of it is left.
func TestRunContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("running containers needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("Debian's busybox-static is needed: %v", err)
	}
	img, err := images.Build(map[string]images.File{"bin/busybox": {Data: bb, Mode: 0o755}, "bin/sh": {Link: "busybox"},
		"bin/sleep": {Link: "busybox"}, "bin/hostname": {Link: "busybox"}, "bin/cat": {Link: "busybox"}}, v1.Config{}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	os.Mkdir(rootfs, 0o755)
	if err := images.Unpack(img, rootfs); err != nil {
		t.Fatal(err)
	}
	netns := fmt.Sprintf("kubeyard-runc-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", netns).Run() })
	rt := Runtime{Root: filepath.Join(dir, "runc")}
	id := "kubeyard-test-" + fmt.Sprint(os.Getpid())
	cgroup := "/kubeyard-test/" + id
	t.Cleanup(func() {
		rt.Delete(context.Background(), id, true)
		for _, ctl := range []string{"memory", "cpu,cpuacct", "pids", "cpuset", "devices", "freezer", "blkio", "net_cls,net_prio", "perf_event", "hugetlb", "rdma", "misc", "systemd"} {
			os.Remove(filepath.Join("/sys/fs/cgroup", ctl, "kubeyard-test"))
		}
	})
	bundle := filepath.Join(dir, "bundle")
	if err := WriteBundle(bundle, Container{ID: id, Rootfs: rootfs, Args: []string{"sh", "-c", "echo hello from $(hostname); cat /proc/self/cgroup; sleep 60"},
		Env: []string{"PATH=/bin"}, Hostname: "pod-1", NetNS: "/run/netns/" + netns, MemoryLimit: 32 << 20, CgroupsPath: cgroup}); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := rt.Create(ctx, id, bundle, log, log); err != nil {
		data, _ := os.ReadFile(log.Name())
		t.Fatalf("%v\n%s", err, data)
	}
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(log.Name())
		if strings.Contains(string(data), "hello from pod-1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container said %q", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := rt.State(ctx, id)
	if err != nil || st.Status != "running" || st.PID == 0 {
		t.Fatalf("state: %+v %v", st, err)
	}
	inode := func(path string) uint64 {
		var s syscall.Stat_t
		if err := syscall.Stat(path, &s); err != nil {
			t.Fatal(err)
		}
		return s.Ino
	}
	if inode(fmt.Sprintf("/proc/%d/ns/net", st.PID)) != inode("/run/netns/"+netns) {
		t.Error("the container is not in the pod's network namespace")
	}
	if inode(fmt.Sprintf("/proc/%d/ns/pid", st.PID)) == inode("/proc/self/ns/pid") {
		t.Error("the container shares the host's PID namespace")
	}
	limit, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", cgroup, "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(limit)) != fmt.Sprint(32<<20) {
		t.Errorf("memory limit: %q %v", limit, err)
	}
	if list, err := rt.List(ctx); err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("list: %+v %v", list, err)
	}
	if err := rt.Kill(ctx, id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st, _ := rt.State(ctx, id); st.Status == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the container did not stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := rt.Delete(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.State(ctx, id); err == nil {
		t.Error("a deleted container has a state")
	}
	if err := rt.Delete(ctx, id, false); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", cgroup)); err == nil {
		t.Error("the container's cgroup is left")
	}
	if list, _ := rt.List(ctx); len(list) != 0 {
		data, _ := json.Marshal(list)
		t.Errorf("containers left: %s", data)
	}
}
