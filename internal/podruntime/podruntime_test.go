package podruntime_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/podnet"
	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/podruntime/podruntimetest"
	"github.com/kubeyard/kubeyard/internal/runc"
)

func TestMain(m *testing.M) { podruntimetest.Main(m) }

var podCIDR = netip.MustParsePrefix("10.4.1.0/24")

func node(t *testing.T) (*podruntime.Runtime, string) { return podruntimetest.New(t) }

func sandbox(t *testing.T, rt *podruntime.Runtime, uid, name string, ip string) *podruntime.Sandbox {
	t.Helper()
	sb, err := rt.RunSandbox(podruntime.SandboxConfig{
		UID: uid, Name: name, Namespace: "default", Hostname: name, IP: netip.MustParseAddr(ip), PodCIDR: podCIDR,
		ResolvConf: "nameserver 10.8.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

func waitLog(t *testing.T, c podruntime.Container, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(c.LogPath)
		if strings.Contains(string(log), want) {
			return string(log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q; its log:\n%s", c.Name, want, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func find(t *testing.T, rt *podruntime.Runtime, uid, name string, attempt int) podruntime.Container {
	t.Helper()
	cs, err := rt.Containers(uid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name && c.Attempt == attempt {
			return c
		}
	}
	t.Fatalf("no container %s attempt %d in %+v", name, attempt, cs)
	return podruntime.Container{}
}

// A pod's container runs from its image on a root of its own, with the
// image's config merged with the pod's, the pod's hostname and etc files,
// and its address; exec and port-forward reach it; removing the sandbox
// leaves nothing behind.
func TestContainerRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rt, _ := node(t)
	sb := sandbox(t, rt, "uid-1", "pod-1", "10.4.1.5")
	c, err := rt.StartContainer(ctx, sb, podruntime.ContainerConfig{
		Name:  "app",
		Image: "busybox",
		Args:  []string{"sh", "-c", "echo $GREETING $FROM_IMAGE $HOSTNAME; hostname; cat /etc/hosts /etc/resolv.conf; touch /written; nc -ll -p 8080 -e echo hello from the pod"},
		Env:   []string{"GREETING=pod"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != podruntime.Running || c.PID == 0 || c.Image != "docker.io/library/busybox:latest" || !strings.HasPrefix(c.ImageRef, "docker.io/library/busybox@sha256:") || len(c.ID) != 64 {
		t.Errorf("started: %+v", c)
	}
	log := waitLog(t, c, "search default.svc")
	for _, want := range []string{"stdout F pod 1 pod-1", "stdout F pod-1", "10.4.1.5\tpod-1", "nameserver 10.8.0.10"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.PID)); !strings.Contains(string(cg), "/poduid-1/"+c.ID) {
		t.Errorf("the container's cgroups: %v\n%s\nits log:\n%s", err, cg, must(os.ReadFile(c.LogPath)))
	}
	if got := podnet.Address(sb.NetNS); got != netip.MustParseAddr("10.4.1.5") {
		t.Errorf("the pod's address: %v", got)
	}
	var out bytes.Buffer
	if err := rt.Exec(ctx, c, runc.Process{Args: []string{"sh", "-c", "ls /written && hostname"}, Stdout: &out, Stderr: &out}); err != nil || out.String() != "/written\npod-1\n" {
		t.Errorf("exec: %q %v", out.String(), err)
	}
	// port-forward: a pipe as the client's stream.
	client, server := net.Pipe()
	go func() { _ = rt.PortForward(ctx, sb.UID, 8080, server) }()
	if got, _ := bufio.NewReader(client).ReadString('\n'); got != "hello from the pod\n" {
		t.Errorf("port-forward read %q", got)
	}
	client.Close()
	if err := rt.PortForward(ctx, sb.UID, 9, nopCloser{}); err == nil {
		t.Error("port-forward to a closed port succeeded")
	}

	// Removing the sandbox takes everything.
	pid := c.PID
	if err := rt.RemoveSandbox(ctx, sb.UID); err != nil {
		t.Fatal(err)
	}
	if !ended(pid) {
		t.Errorf("the container's process %d is still there", pid)
	}
	if netns.Exists(sb.NetNS) {
		t.Errorf("netns %s left", sb.NetNS)
	}
	if sbs, _ := rt.Sandboxes(); len(sbs) != 0 {
		t.Errorf("sandboxes left: %+v", sbs)
	}
	if mounts, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(mounts), "uid-1") {
		t.Errorf("mounts left:\n%s", mounts)
	}
}

// Ends are recorded and read back; a new attempt runs beside the ended
// one; stopping sends SIGTERM first and SIGKILL after the grace period;
// an image the store lacks is ErrImageNotFound.
func TestContainerLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rt, _ := node(t)
	sb := sandbox(t, rt, "uid-2", "pod-2", "10.4.1.6")
	if _, err := rt.StartContainer(ctx, sb, podruntime.ContainerConfig{Name: "x", Image: "nginx:1.27"}); !errors.Is(err, podruntime.ErrImageNotFound) {
		t.Errorf("a missing image: %v", err)
	}
	for attempt := range 2 {
		if _, err := rt.StartContainer(ctx, sb, podruntime.ContainerConfig{Name: "job", Attempt: attempt, Image: "busybox", Command: []string{"sh", "-c", "echo run; exit 4"}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for find(t, rt, sb.UID, "job", 1).State != podruntime.Exited && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for attempt := range 2 {
		if c := find(t, rt, sb.UID, "job", attempt); c.State != podruntime.Exited || c.ExitCode != 4 || c.Reason != "Error" || c.FinishedAt.IsZero() {
			t.Errorf("attempt %d: %+v", attempt, c)
		}
	}
	// Handles SIGTERM: ends within the grace period, by itself.
	polite, err := rt.StartContainer(ctx, sb, podruntime.ContainerConfig{Name: "polite", Image: "busybox", Command: []string{"sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, polite, "ready")
	if err := rt.StopContainer(ctx, polite, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if c := find(t, rt, sb.UID, "polite", 0); c.ExitCode != 0 || c.Reason != "Completed" {
		t.Errorf("SIGTERM: %+v", c)
	}
	// Ignores it: killed once the grace period is over.
	stubborn, err := rt.StartContainer(ctx, sb, podruntime.ContainerConfig{Name: "stubborn", Image: "busybox", Command: []string{"sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, stubborn, "ready")
	start := time.Now()
	if err := rt.StopContainer(ctx, stubborn, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if c := find(t, rt, sb.UID, "stubborn", 0); c.ExitCode != 137 || time.Since(start) < 300*time.Millisecond {
		t.Errorf("SIGKILL after the grace period: %+v after %s", c, time.Since(start))
	}
	if err := rt.RemoveContainer(find(t, rt, sb.UID, "job", 0)); err != nil {
		t.Fatal(err)
	}
	if cs, _ := rt.Containers(sb.UID); len(cs) != 3 {
		t.Errorf("after removing one of four: %+v", cs)
	}
}

// A container outlives the runtime that started it: a new one (an agent
// restarted) finds it running with the same PID; a container whose shim
// was killed is Unknown, and stopping it ends it.
func TestContainersOutliveTheirRuntime(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rt, _ := node(t)
	sb := sandbox(t, rt, "uid-3", "pod-3", "10.4.1.7")
	c, err := rt.StartContainer(ctx, sb, podruntime.ContainerConfig{Name: "app", Image: "busybox", Command: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := podruntime.New(rt.Config())
	if got := find(t, again, sb.UID, "app", 0); got.State != podruntime.Running || got.PID != c.PID {
		t.Errorf("found again: %+v, started %+v", got, c)
	}
	shimPID := must(os.ReadFile(filepath.Join(rt.Config().Dir, "pods", sb.UID, "containers", "app-0", "shim.pid")))
	if err := syscall.Kill(must(strconv.Atoi(string(shimPID))), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for find(t, again, sb.UID, "app", 0).State != podruntime.Unknown && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := find(t, again, sb.UID, "app", 0); got.State != podruntime.Unknown {
		t.Errorf("shim killed: %+v", got)
	}
	if err := again.StopContainer(ctx, c, 0); err != nil {
		t.Fatal(err)
	}
	got := find(t, again, sb.UID, "app", 0)
	if got.State != podruntime.Exited {
		t.Errorf("stopped: %+v", got)
	}
	if err := again.RemoveContainer(got); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(got.AttachSocket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed shim's attach socket %s is left: %v", got.AttachSocket, err)
	}
	if !ended(c.PID) {
		t.Errorf("process %d of the stopped container is there", c.PID)
	}
}

// ended says whether a process has ended: it is gone, or a zombie (this
// machine's init reaps orphans in its own time).
func ended(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	_, state, _ := strings.Cut(string(stat), ") ")
	return err != nil || strings.HasPrefix(state, "Z")
}

type nopCloser struct{ io.ReadWriter }

func (nopCloser) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopCloser) Close() error                { return nil }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestStopAContainerStillStarting: a container stopped while its shim
// has not yet made it (a pod deleted as it starts) is killed once it
// runs; a SIGKILL sent before that finds nothing to kill.
func TestStopAContainerStillStarting(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rt, _ := node(t)
	sb := sandbox(t, rt, "uid-9", "pod-9", "10.4.1.9")
	self := must(os.Executable())
	slow := filepath.Join(t.TempDir(), "slow-shim")
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nsleep 1\nexec "+self+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := rt.Config()
	cfg.Shim = slow
	slowRT := must(podruntime.New(cfg))
	startCtx, giveUp := context.WithCancel(ctx)
	started := make(chan error, 1)
	go func() {
		_, err := slowRT.StartContainer(startCtx, sb, podruntime.ContainerConfig{Name: "app", Image: "busybox", Command: []string{"sleep", "60"}})
		started <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cs, _ := slowRT.Containers(sb.UID); len(cs) == 1 && cs[0].State == podruntime.Created {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the container never showed as Created")
		}
		time.Sleep(10 * time.Millisecond)
	}
	giveUp() // as the kubelet does when the pod goes
	<-started
	c := find(t, slowRT, sb.UID, "app", 0)
	if err := slowRT.StopContainer(ctx, c, 0); err != nil {
		t.Fatal(err)
	}
	if got := find(t, slowRT, sb.UID, "app", 0); got.State != podruntime.Exited {
		t.Fatalf("stopped while starting: %+v", got)
	}
}
