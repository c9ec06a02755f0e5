package shim_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/runc"
	"github.com/kubeyard/kubeyard/internal/runc/runctest"
	"github.com/kubeyard/kubeyard/internal/shim"
)

// TestMain runs this test binary as the shim when asked to (as the
// engine runs kubeyard-shim): a shim is a process of its own, the
// subreaper of its container.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// run watches over a container of env with a shim process until it ends
// (after act, if any, once it has logged "ready") and returns how it
// ended and its log.
func run(t *testing.T, env *runctest.Env, c runc.Container, act func()) (shim.Exit, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(env.Dir, c.ID)
	if err := runc.WriteBundle(dir, c); err != nil {
		t.Fatal(err)
	}
	cfg := shim.Config{ID: c.ID, Bundle: dir, Runc: env.Runc, Log: filepath.Join(dir, "0.log"), StartedFile: filepath.Join(dir, "started.json"), ExitFile: filepath.Join(dir, "exit.json"), CgroupMemory: env.MemoryCgroup(c)}
	cfgFile := filepath.Join(dir, "shim.json")
	if err := shim.WriteConfig(cfgFile, cfg); err != nil {
		t.Fatal(err)
	}
	proc := exec.CommandContext(ctx, os.Args[0], "shim", cfgFile)
	proc.Stderr = os.Stderr
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.Wait() }()
	if act != nil {
		for {
			if log, _ := os.ReadFile(cfg.Log); strings.Contains(string(log), " ready\n") {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s never logged ready", c.ID)
			case err := <-done:
				t.Fatalf("the shim of %s ended before it was ready: %v", c.ID, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		act()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	end, err := shim.ReadExit(cfg.ExitFile)
	if err != nil {
		t.Fatal(err)
	}
	if started, err := shim.ReadStarted(cfg.StartedFile); end.Reason != "StartError" && (err != nil || started.PID == 0 || !started.StartedAt.Equal(end.StartedAt)) {
		t.Errorf("started file: %+v %v (exit %+v)", started, err, end)
	}
	log, _ := os.ReadFile(cfg.Log)
	if _, err := env.Runc.State(ctx, c.ID); !errors.Is(err, runc.ErrNotExist) {
		t.Errorf("the ended container is still known to runc: %v", err)
	}
	return end, string(log)
}

var logLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) (F|P) `)

// What a container prints is logged in the kubelet's format, each stream
// tagged; its exit code and reason are recorded, and it is deleted.
func TestShimLogsAndRecordsTheExit(t *testing.T) {
	env := runctest.New(t)
	end, log := run(t, env, env.Container("exits", "sh", "-c", "echo out; echo err >&2; echo -n partial; exit 3"), nil)
	if end.Code != 3 || end.Reason != "Error" || end.Signal != 0 || end.StartedAt.IsZero() || end.FinishedAt.Before(end.StartedAt) {
		t.Errorf("exit: %+v", end)
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	joined := strings.Join(lines, "\n")
	if len(lines) != 3 || !strings.Contains(joined, " stdout F out") || !strings.Contains(joined, " stderr F err") || !strings.Contains(joined, " stdout F partial") {
		t.Errorf("log:\n%s", log)
	}
	for _, l := range lines {
		if !logLine.MatchString(l) {
			t.Errorf("not in the CRI log format: %q", l)
		}
	}
	if end, _ := run(t, env, env.Container("ok", "sh", "-c", "exit 0"), nil); end.Reason != "Completed" || end.Code != 0 {
		t.Errorf("a success: %+v", end)
	}
}

// A container killed by a signal ends 128+signal; one over its memory
// limit is OOMKilled (137).
func TestShimSignalAndOOM(t *testing.T) {
	env := runctest.New(t)
	// A handler: as a PID namespace's init, the shell ignores a signal
	// it does not handle (only SIGKILL gets through, as on any node).
	c := env.Container("terminated", "sh", "-c", "trap 'kill -TERM $child; wait; exit 1' TERM; sleep 60 & child=$!; echo ready; wait")
	end, _ := run(t, env, c, func() {
		if err := env.Runc.Kill(context.Background(), c.ID, syscall.SIGTERM, false); err != nil {
			t.Error(err)
		}
	})
	if end.Code != 1 || end.Reason != "Error" {
		t.Errorf("SIGTERM to a shell that handles it: %+v", end)
	}
	c = env.Container("killed", "sh", "-c", "echo ready; exec sleep 60")
	end, _ = run(t, env, c, func() {
		if err := env.Runc.Kill(context.Background(), c.ID, syscall.SIGKILL, false); err != nil {
			t.Error(err)
		}
	})
	if end.Code != 137 || end.Signal != 9 || end.Reason != "Error" {
		t.Errorf("SIGKILL: %+v", end)
	}
	hog := env.Container("hog", "sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done")
	hog.MemoryLimit = 16 << 20
	end, _ = run(t, env, hog, nil)
	if end.Code != 137 || end.Reason != "OOMKilled" {
		t.Errorf("over the memory limit: %+v", end)
	}
}

// A container that cannot start is a StartError, with runc's word.
func TestShimStartError(t *testing.T) {
	env := runctest.New(t)
	end, _ := run(t, env, env.Container("missing", "/no/such/program"), nil)
	if end.Reason != "StartError" || end.Code != 128 || !strings.Contains(end.Message, "no/such/program") {
		t.Errorf("a missing program: %+v", end)
	}
}
