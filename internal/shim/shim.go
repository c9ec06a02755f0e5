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
	"net"
	"os"
	"path/filepath"
	"slices"
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
	// AttachSocket, if set, is where clients attach (Attach): to the
	// container's output and, with Stdin, its input (StdinOnce: closed
	// when the first client goes). Terminal gives the container a
	// terminal (its spec has process.terminal), its output one stream.
	AttachSocket               string
	Stdin, StdinOnce, Terminal bool
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
	w := &logWriter{f: log}
	var att *attacher
	if cfg.AttachSocket != "" {
		if att, err = listenAttach(cfg.AttachSocket); err != nil {
			return err
		}
		defer os.Remove(cfg.AttachSocket)
		defer att.close()
		att.once = cfg.StdinOnce
		w.tee = att.tee
		go att.serve()
	}
	var copying sync.WaitGroup
	stdio, closeOurs, err := w.streams(cfg, att, &copying)
	if err != nil {
		return err
	}
	// Created and started in one runc process: a pod's start is
	// mostly runc's.
	runErr := cfg.Runc.Run(ctx, cfg.ID, cfg.Bundle, stdio.Stdio)
	started := time.Now().UTC()
	// The container holds its own ends now; without ours, the pipes
	// close when it ends.
	closeOurs()
	if runErr == nil && cfg.Terminal {
		runErr = stdio.takeConsole(att, w, &copying)
	}
	var pid int
	if runErr == nil {
		pid, runErr = readPID(filepath.Join(cfg.Bundle, "container.pid"))
	}
	if runErr != nil {
		// A container runc left behind does not outlive its shim.
		_ = cfg.Runc.Delete(context.WithoutCancel(ctx), cfg.ID, true)
		copying.Wait()
		return record(cfg, Exit{Code: 128, Reason: "StartError", Message: runErr.Error(), FinishedAt: time.Now().UTC()})
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

// logWriter writes streams to a log in the CRI format, and to tee (the
// clients attached).
type logWriter struct {
	mu  sync.Mutex
	f   io.Writer
	tee func(stream string, p []byte)
}

// stdio is what runc create is given, with the console socket's listener
// of a container with a terminal.
type stdio struct {
	runc.Stdio
	// console gives the terminal runc sends during create.
	console chan consoleResult
}

type consoleResult struct {
	master *os.File
	err    error
}

// streams makes the container's streams: pipes logged (and teed), a pipe
// for its input, or a console socket for runc to send its terminal to.
// closeOurs closes the ends the container holds, once it is created.
func (w *logWriter) streams(cfg Config, att *attacher, copying *sync.WaitGroup) (stdio, func(), error) {
	var st stdio
	var theirs []*os.File
	closeOurs := func() {
		for _, f := range theirs {
			f.Close()
		}
	}
	if cfg.Terminal {
		path := cfg.AttachSocket + ".console"
		if cfg.AttachSocket == "" {
			return st, closeOurs, errors.New("shim: a container with a terminal needs an attach socket")
		}
		_ = os.Remove(path)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			return st, closeOurs, fmt.Errorf("shim: console socket: %w", err)
		}
		st.console, st.ConsoleSocket = make(chan consoleResult, 1), path
		go func() {
			defer os.Remove(path)
			defer ln.Close()
			master, err := receiveConsole(ln)
			st.console <- consoleResult{master, err}
		}()
		return st, closeOurs, nil
	}
	for _, stream := range []string{"stdout", "stderr"} {
		r, wr, err := os.Pipe()
		if err != nil {
			return st, closeOurs, err
		}
		theirs = append(theirs, wr)
		if stream == "stdout" {
			st.Stdout = wr
		} else {
			st.Stderr = wr
		}
		copying.Go(func() { w.copy(stream, r) })
	}
	if cfg.Stdin && att != nil {
		r, wr, err := os.Pipe()
		if err != nil {
			return st, closeOurs, err
		}
		theirs = append(theirs, r)
		st.Stdin = r
		att.mu.Lock()
		att.stdin = wr
		att.mu.Unlock()
	}
	return st, closeOurs, nil
}

// takeConsole takes the terminal runc made for the container: its output
// logged and teed, clients' input and sizes to it.
func (st stdio) takeConsole(att *attacher, w *logWriter, copying *sync.WaitGroup) error {
	var got consoleResult
	select {
	case got = <-st.console:
	case <-time.After(10 * time.Second):
		return errors.New("shim: runc sent no terminal")
	}
	if got.err != nil {
		return got.err
	}
	master := got.master
	att.mu.Lock()
	att.stdin, att.term = master, master
	att.mu.Unlock()
	// A terminal's output reaches clients as it comes (a prompt has no
	// newline), and the log line by line.
	logged, toLog := io.Pipe()
	copying.Go(func() { w.copyLines("stdout", logged, false) })
	copying.Go(func() {
		defer toLog.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				att.tee("stdout", slices.Clone(buf[:n]))
				_, _ = toLog.Write(buf[:n])
			}
			if err != nil { // EIO once the container's end closes
				return
			}
		}
	})
	return nil
}

func (w *logWriter) copy(stream string, r io.ReadCloser) { w.copyLines(stream, r, true) }

// copyLines logs what r gives line by line, and tees the lines.
func (w *logWriter) copyLines(stream string, r io.ReadCloser, tee bool) {
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
			if tee && w.tee != nil {
				out := line
				if tag == "F" {
					out = append(slices.Clip(line), '\n')
				}
				w.tee(stream, out)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}
