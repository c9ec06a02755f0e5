package runc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/runc"
	"github.com/kubeyard/kubeyard/internal/runc/runctest"
)

// A container runs for real: from an image unpacked, in a network
// namespace of its own, with its hostname and memory limit; its output
// goes where it is told; killed and deleted, nothing of it is left.
func TestRunContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("running containers needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := runctest.New(t)
	rt, dir := env.Runc, env.Dir
	id := "c1"
	c := env.Container(id, "sh", "-c", "echo hello from $(hostname); sleep 60")
	c.MemoryLimit = 32 << 20
	cgroup := c.CgroupsPath
	bundle := filepath.Join(dir, "bundle")
	if err := runc.WriteBundle(bundle, c); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := rt.Create(ctx, id, bundle, runc.Stdio{Stdout: log, Stderr: log}); err != nil {
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
	if inode(fmt.Sprintf("/proc/%d/ns/net", st.PID)) != inode(env.NetNS) {
		t.Error("the container is not in the pod's network namespace")
	}
	if inode(fmt.Sprintf("/proc/%d/ns/pid", st.PID)) == inode("/proc/self/ns/pid") {
		t.Error("the container shares the host's PID namespace")
	}
	limit, err := os.ReadFile(filepath.Join(env.MemoryCgroup(c), "memory.limit_in_bytes"))
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
