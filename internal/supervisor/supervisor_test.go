package supervisor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
	"github.com/kubeyard/kubeyard/internal/poll"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := poll.Until(ctx, func(context.Context) error {
		if cond() {
			return nil
		}
		return errors.New(what)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sleeper(dir string) Process {
	return Process{Args: []string{"-c", "exec sleep 60"}, PIDFile: filepath.Join(dir, "p.pid"), LogFile: filepath.Join(dir, "p.log")}
}

// started ensures the sleeper runs under s and returns its PID.
func started(t *testing.T, s *Supervisor, dir string) int {
	t.Helper()
	if err := s.Ensure("p", sleeper(dir)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "started", func() bool { return s.PID("p") != 0 })
	return s.PID("p")
}

func newSup(t *testing.T) *Supervisor {
	s, err := New(Config{Binary: "/bin/sh", MinBackoff: 10 * time.Millisecond, StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRestartsADeadProcess(t *testing.T) {
	dir := t.TempDir()
	s := newSup(t)
	defer s.Close()
	first := started(t, s, dir)
	syscall.Kill(first, syscall.SIGKILL)
	waitFor(t, "restarted", func() bool { return s.PID("p") != 0 && s.PID("p") != first })
	if s.Restarts("p") != 1 {
		t.Fatalf("restarts = %d", s.Restarts("p"))
	}
	second := s.PID("p")
	if err := s.Stop("p"); err != nil {
		t.Fatal(err)
	}
	if pidAlive(second) {
		t.Fatal("Stop left the process running")
	}
	if _, err := os.Stat(filepath.Join(dir, "p.pid")); !os.IsNotExist(err) {
		t.Fatal("Stop left the pidfile")
	}
}

func TestAdoptsAfterDetach(t *testing.T) {
	dir := t.TempDir()
	s := newSup(t)
	pid := started(t, s, dir)
	s.Detach() // as an engine that crashed: the process runs on
	if !pidAlive(pid) {
		t.Fatal("Detach stopped the process")
	}
	next := newSup(t)
	defer next.Close()
	if err := next.Ensure("p", sleeper(dir)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "adopted", func() bool { return next.PID("p") != 0 })
	if next.PID("p") != pid {
		t.Fatalf("adopted pid %d, want %d", next.PID("p"), pid)
	}
	// An adopted process that dies is restarted too.
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "restarted after adoption", func() bool { return next.PID("p") != 0 && next.PID("p") != pid })
}

func TestChangedSpecIsRestarted(t *testing.T) {
	dir := t.TempDir()
	s := newSup(t)
	pid := started(t, s, dir)
	s.Detach()
	next := newSup(t)
	defer next.Close()
	changed := sleeper(dir)
	changed.Args = []string{"-c", "exec sleep 61"}
	if err := next.Ensure("p", changed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replaced", func() bool { return next.PID("p") != 0 && next.PID("p") != pid })
	if pidAlive(pid) {
		t.Fatal("the process with the old configuration still runs")
	}
}

// A process with a network namespace runs in it, under the PID the
// supervisor reports (nsenter execs the binary in its place).
func TestRunsInItsNetworkNamespace(t *testing.T) {
	ns := netnstest.Name(t, "sup")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	s := newSup(t)
	defer s.Close()
	dir := t.TempDir()
	p := sleeper(dir)
	p.NetNS = ns
	if err := s.Ensure("p", p); err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(netns.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the process in the namespace", func() bool {
		pid := s.PID("p")
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		got, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
		return pid != 0 && strings.TrimSpace(string(comm)) == "sleep" && err == nil && os.SameFile(got, want)
	})
}

// A process recorded by an earlier supervisor is stopped from its pidfile.
func TestStopRecorded(t *testing.T) {
	dir := t.TempDir()
	first := newSup(t)
	pid := started(t, first, dir)
	first.Detach()
	newSup(t).StopRecorded(filepath.Join(dir, "p.pid"))
	if pidAlive(pid) {
		t.Errorf("the recorded process %d still runs", pid)
	}
	if _, err := os.Stat(filepath.Join(dir, "p.pid")); !os.IsNotExist(err) {
		t.Errorf("the pidfile stays: %v", err)
	}
}

// TestFindsAProcessStartedAsTheEngineCrashed: an engine that crashed
// between starting a process and writing its PID left the pidfile saying
// it was starting; the next engine finds that process (adopting it, or
// stopping it if its configuration changed) instead of starting a second
// one beside it (CI: a kube-controller-manager left so held its port, and
// the one started in its place never ran).
func TestFindsAProcessStartedAsTheEngineCrashed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  func(Process) Process
		adopt bool
	}{
		{name: "same configuration", spec: func(p Process) Process { return p }, adopt: true},
		{name: "changed configuration", spec: func(p Process) Process { p.Env = []string{"X=1"}; return p }, adopt: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			spec := sleeper(dir)
			// What the crashed engine got to: the pidfile that says the
			// process starts, and the process.
			nonce := newNonce()
			if err := writeStartingPIDFile(spec.PIDFile, nonce, spec.hash()); err != nil {
				t.Fatal(err)
			}
			// sleep itself, not the sh that would exec it: its
			// environment is in place once Start returns.
			orphan := exec.Command("sleep", "60")
			orphan.Env = append(os.Environ(), startEnv+"="+nonce)
			orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := orphan.Start(); err != nil {
				t.Fatal(err)
			}
			reaped := make(chan struct{})
			go func() { orphan.Wait(); close(reaped) }()
			t.Cleanup(func() { orphan.Process.Kill(); <-reaped })

			s := newSup(t)
			defer s.Close()
			if err := s.Ensure("p", tc.spec(spec)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "running", func() bool { return s.PID("p") != 0 })
			if tc.adopt {
				if got := s.PID("p"); got != orphan.Process.Pid {
					t.Fatalf("runs %d, want the orphan %d adopted", got, orphan.Process.Pid)
				}
				return
			}
			select {
			case <-reaped:
			case <-time.After(5 * time.Second):
				t.Fatal("the orphan with the old configuration still runs")
			}
			if s.PID("p") == orphan.Process.Pid {
				t.Fatal("the orphan with the old configuration was adopted")
			}
		})
	}
}
