package shim_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
	return runWith(t, env, c, nil, act)
}

// runWith is run with the shim's config changed by edit first; act, if
// any, runs once the container has started.
func runWith(t *testing.T, env *runctest.Env, c runc.Container, edit func(*shim.Config), act func()) (shim.Exit, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(env.Dir, c.ID)
	if err := runc.WriteBundle(dir, c); err != nil {
		t.Fatal(err)
	}
	cfg := shim.Config{ID: c.ID, Bundle: dir, Runc: env.Runc, Log: filepath.Join(dir, "0.log"), StartedFile: filepath.Join(dir, "started.json"), ExitFile: filepath.Join(dir, "exit.json"), CgroupMemory: env.MemoryCgroup(c)}
	if edit != nil {
		edit(&cfg)
	}
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
			if _, err := shim.ReadStarted(cfg.StartedFile); err == nil && edit != nil {
				break // attached to: it need not say it is ready
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s never logged ready", c.ID)
			case err := <-done:
				end, _ := shim.ReadExit(cfg.ExitFile)
				log, _ := os.ReadFile(cfg.Log)
				t.Fatalf("the shim of %s ended before it was ready: %v; it ended %+v; its log:\n%s", c.ID, err, end, log)
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

// Attaching: a client's input reaches the container, its output comes
// back; without a terminal the streams are apart and the end of input is
// passed on; with one, the client's size is the terminal's.
func TestShimAttach(t *testing.T) {
	env := runctest.New(t)
	socket := func(name string) string {
		return filepath.Join("/run", "kubeyard-test-"+strconv.Itoa(os.Getpid())+"-"+name+".sock")
	}
	c := env.Container("cat", "sh", "-c", "cat; echo done >&2")
	var out, errOut bytes.Buffer
	end, log := runWith(t, env, c, func(cfg *shim.Config) { cfg.AttachSocket, cfg.Stdin = socket("cat"), true }, func() {
		if err := shim.Attach(context.Background(), socket("cat"), strings.NewReader("hello\n"), &out, &errOut, nil); err != nil {
			t.Error(err)
		}
	})
	if end.Code != 0 || out.String() != "hello\n" || errOut.String() != "done\n" || !strings.Contains(log, "stdout F hello") {
		t.Errorf("attached to cat: %+v %q %q\n%s", end, out.String(), errOut.String(), log)
	}

	c = env.Container("tty", "sh")
	c.Terminal = true
	out.Reset()
	end, log = runWith(t, env, c, func(cfg *shim.Config) { cfg.AttachSocket, cfg.Stdin, cfg.Terminal = socket("tty"), true, true }, func() {
		resize := make(chan shim.Size, 1)
		resize <- shim.Size{Width: 100, Height: 30}
		stdin, typing := io.Pipe()
		go func() {
			time.Sleep(200 * time.Millisecond) // the size first
			io.WriteString(typing, "stty size; tty; exit\n")
		}()
		if err := shim.Attach(context.Background(), socket("tty"), stdin, &out, nil, resize); err != nil {
			t.Error(err)
		}
	})
	if end.Code != 0 || !strings.Contains(out.String(), "30 100") || !strings.Contains(out.String(), "/dev/pts/0") || !strings.Contains(log, "30 100") {
		t.Errorf("attached to a shell on a terminal: %+v %q\n%s", end, out.String(), log)
	}
	for _, name := range []string{"cat", "tty"} {
		if _, err := os.Stat(socket(name)); err == nil {
			t.Errorf("attach socket %s left", socket(name))
		}
	}
}
