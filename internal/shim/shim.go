// Package shim watches over one container, as conmon or containerd's shim
// do: a process of its own per container (`kubeyard shim`), outliving the
// engine, that creates and starts the container with runc, writes what the
// container prints to its log in the kubelet's format (the CRI log format:
// "<RFC 3339 time> <stream> <F|P> <text>"), waits for it to end as its
// subreaper, records how it ended (exit code, signal, OOMKilled) in an
// exit file, and deletes it from runc. A node agent that restarts finds
// each container either running (its shim and runc agree) or ended (its
// exit file says how).
package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/jsonfile"
	"github.com/kubeyard/kubeyard/internal/runc"
)

// Config is one container to watch over.
type Config struct {
	ID     string
	Bundle string // holds config.json (runc.WriteBundle)
	Runc   runc.Runtime
	// Log is the container's log (CRI format); StartedFile where its
	// start is recorded (Started), ExitFile its end (Exit).
	Log, StartedFile, ExitFile string
	// CgroupMemory is the container's memory cgroup folder, read for
	// OOM kills (cgroup v1: memory.oom_control; v2: memory.events).
	CgroupMemory string
}

// Exit is how a container ended.
type Exit struct {
	Code int `json:"exitCode"`
	// Signal killed it (0: it exited).
	Signal int `json:"signal,omitempty"`
	// Reason is the kubelet's: Completed, Error, OOMKilled, or
	// StartError when it never ran.
	Reason     string    `json:"reason"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Main is the shim's command: kubeyard-shim CONFIG, CONFIG a JSON
// Config. It returns the process's exit code.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: kubeyard-shim CONFIG")
		return 2
	}
	cfg, err := jsonfile.Read[Config](args[0])
	if err == nil {
		err = Run(context.Background(), cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeyard-shim:", err)
		return 1
	}
	return 0
}

// WriteConfig writes cfg where Main reads it.
func WriteConfig(path string, cfg Config) error { return jsonfile.Write(path, cfg) }

// Started is a container's start: its process and when.
type Started struct {
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"startedAt"`
}

// ReadStarted reads a container's started file; os.ErrNotExist before
// it starts (or when it never did).
func ReadStarted(path string) (Started, error) { return jsonfile.Read[Started](path) }

// ReadExit reads a container's exit file; os.ErrNotExist while it runs.
func ReadExit(path string) (Exit, error) { return jsonfile.Read[Exit](path) }

// Run watches over the container until it ends: create, start, log, wait,
// record, delete. It returns once the exit file is written.
func Run(ctx context.Context, cfg Config) error {
	// Orphans of the container (its init, once runc create returns)
	// become this process's children, so that their end is seen here.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("shim: subreaper: %w", err)
	}
	log, err := os.OpenFile(cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	defer log.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	w := &logWriter{f: log}
	var copying sync.WaitGroup
	copying.Go(func() { w.copy("stdout", outR) })
	copying.Go(func() { w.copy("stderr", errR) })
	createErr := cfg.Runc.Create(ctx, cfg.ID, cfg.Bundle, outW, errW)
	// The container holds its own ends now; without ours, the pipes
	// close when it ends.
	outW.Close()
	errW.Close()
	if createErr != nil {
		copying.Wait()
		return record(cfg, Exit{Code: 128, Reason: "StartError", Message: createErr.Error(), FinishedAt: time.Now().UTC()})
	}
	pid, err := readPID(filepath.Join(cfg.Bundle, "container.pid"))
	if err != nil {
		return record(cfg, Exit{Code: 128, Reason: "StartError", Message: err.Error(), FinishedAt: time.Now().UTC()})
	}
	started := time.Now().UTC()
	if err := cfg.Runc.Start(ctx, cfg.ID); err != nil {
		_ = cfg.Runc.Delete(context.WithoutCancel(ctx), cfg.ID, true)
		copying.Wait()
		return record(cfg, Exit{Code: 128, Reason: "StartError", Message: err.Error(), StartedAt: started, FinishedAt: time.Now().UTC()})
	}
	if cfg.StartedFile != "" {
		if err := jsonfile.Write(cfg.StartedFile, Started{PID: pid, StartedAt: started}); err != nil {
			return err
		}
	}
	status := reap(pid)
	copying.Wait()
	end := Exit{StartedAt: started, FinishedAt: time.Now().UTC()}
	switch {
	case status.Signaled():
		end.Signal = int(status.Signal())
		end.Code = 128 + end.Signal
	default:
		end.Code = status.ExitStatus()
	}
	switch {
	case oomKilled(cfg.CgroupMemory):
		end.Reason = "OOMKilled"
	case end.Code == 0:
		end.Reason = "Completed"
	default:
		end.Reason = "Error"
	}
	if err := cfg.Runc.Delete(context.WithoutCancel(ctx), cfg.ID, true); err != nil {
		end.Message = err.Error()
	}
	return record(cfg, end)
}

// reap waits for pid to end, reaping whatever else ends meanwhile (the
// container's orphans), and returns its status.
func reap(pid int) syscall.WaitStatus {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil { // no child left: it ended unseen
			return ws
		}
		if got == pid {
			return ws
		}
	}
}

func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("shim: the container's pid: %w", err)
	}
	var pid int
	_, err = fmt.Sscan(strings.TrimSpace(string(data)), &pid)
	return pid, err
}

// oomKilled says whether the kernel killed a process of the cgroup for
// memory.
func oomKilled(dir string) bool {
	if dir == "" {
		return false
	}
	for _, file := range []string{"memory.oom_control", "memory.events"} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
				return true
			}
		}
	}
	return false
}

// record writes the exit file whole (the agent may read it any time).
func record(cfg Config, e Exit) error { return jsonfile.Write(cfg.ExitFile, e) }

// maxLine is where the kubelet's log format splits a line (P, partial).
const maxLine = 16 * 1024

// logWriter writes streams to a log in the CRI format.
type logWriter struct {
	mu sync.Mutex
	f  io.Writer
}

func (w *logWriter) copy(stream string, r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			tag := "F"
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			} else if err == bufio.ErrBufferFull {
				tag = "P"
			}
			w.mu.Lock()
			fmt.Fprintf(w.f, "%s %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, tag, line)
			w.mu.Unlock()
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}
