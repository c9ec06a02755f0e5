// Package supervisor keeps control-plane processes running: it starts each
// from the kubeyard binary in multi-call mode, restarts it with exponential
// backoff when it dies, sends its output to a log file, and records it in a
// pidfile. Processes run in their own process group, so they outlive an
// engine that crashes; the next engine adopts them from their pidfiles
// instead of restarting them, and the cluster never notices.
package supervisor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Process is what to run and where its files go.
type Process struct {
	Args []string // arguments after the binary
	Env  []string // added to the engine's environment
	// NetNS is the named network namespace the process runs in (empty:
	// the engine's): nsenter enters it and execs the binary, so the
	// process keeps nsenter's PID.
	NetNS   string
	PIDFile string
	LogFile string
}

// hash identifies the process's configuration: an adopted process whose
// configuration changed is restarted.
func (p Process) hash() string {
	h := sha256.New()
	parts := append(append([]string{}, p.Args...), p.Env...)
	if p.NetNS != "" {
		parts = append(parts, "netns="+p.NetNS)
	}
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Config configures a Supervisor.
type Config struct {
	Binary string // the multi-call binary; default: this executable
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the delay before a restart.
	MinBackoff, MaxBackoff time.Duration
	// StopTimeout is how long a stopping process gets before SIGKILL.
	StopTimeout time.Duration
}

// Supervisor owns a set of named processes.
type Supervisor struct {
	cfg   Config
	mu    sync.Mutex
	procs map[string]*proc
}

// New returns a Supervisor with defaults filled in.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 20 * time.Second
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 15 * time.Second
	}
	return &Supervisor{cfg: cfg, procs: map[string]*proc{}}, nil
}

type proc struct {
	name string
	spec Process
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	pid      int
	restarts int
	detached bool // stopped by Detach: leave the process and its pidfile
}

// Ensure makes sure process name runs with spec: a process already supervised
// with the same spec is left alone; one with another spec is restarted; one
// left by an earlier engine (pidfile) is adopted if its spec is the same.
func (s *Supervisor) Ensure(name string, spec Process) error {
	s.mu.Lock()
	p, ok := s.procs[name]
	s.mu.Unlock()
	if ok {
		if p.spec.hash() == spec.hash() {
			return nil
		}
		if err := s.Stop(name); err != nil {
			return err
		}
	}
	for _, path := range []string{spec.PIDFile, spec.LogFile} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
	}
	p = &proc{name: name, spec: spec, stop: make(chan struct{}), done: make(chan struct{})}
	adopted := 0
	if pid, hash, err := readPIDFile(spec.PIDFile); err == nil {
		if hash == spec.hash() {
			adopted = pid
			s.cfg.Logger.Info("adopted process", "name", name, "pid", pid)
		} else {
			s.cfg.Logger.Info("stopping process with old configuration", "name", name, "pid", pid)
			terminate(pid, s.cfg.StopTimeout, nil)
		}
	}
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	go s.run(p, adopted)
	return nil
}

// PID returns the current PID of process name, or 0.
func (s *Supervisor) PID(name string) int { pid, _ := s.state(name); return pid }

// Restarts returns how many times process name was restarted.
func (s *Supervisor) Restarts(name string) int { _, n := s.state(name); return n }

func (s *Supervisor) state(name string) (pid, restarts int) {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return 0, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.restarts
}

// Stop stops process name (SIGTERM, then SIGKILL after StopTimeout), waits
// for it and removes its pidfile.
func (s *Supervisor) Stop(name string) error {
	s.mu.Lock()
	p, ok := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	close(p.stop)
	<-p.done
	return nil
}

// StopMatching stops, in parallel, every process whose name matches.
func (s *Supervisor) StopMatching(match func(name string) bool) {
	s.mu.Lock()
	var names []string
	for n := range s.procs {
		if match(n) {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { _ = s.Stop(n) })
	}
	wg.Wait()
}

// Close stops every process.
func (s *Supervisor) Close() { s.StopMatching(func(string) bool { return true }) }

// Detach forgets every process without stopping it, leaving the pidfiles for
// the next engine to adopt.
func (s *Supervisor) Detach() {
	s.mu.Lock()
	procs := s.procs
	s.procs = map[string]*proc{}
	s.mu.Unlock()
	for _, p := range procs {
		p.mu.Lock()
		p.detached = true
		p.mu.Unlock()
		close(p.stop)
		<-p.done
	}
}

func (s *Supervisor) run(p *proc, adopted int) {
	defer close(p.done)
	backoff := s.cfg.MinBackoff
	for {
		pid := adopted
		var exited <-chan error
		started := time.Now()
		if pid != 0 {
			exited = watchPID(pid)
			adopted = 0
		} else {
			cmd, err := s.start(p)
			if err != nil {
				s.cfg.Logger.Error("start process", "name", p.name, "err", err)
				exited = closedWith(err)
			} else {
				pid = cmd.Process.Pid
				ch := make(chan error, 1)
				go func() { ch <- cmd.Wait() }()
				exited = ch
			}
		}
		p.mu.Lock()
		p.pid = pid
		p.mu.Unlock()

		select {
		case <-p.stop:
			p.mu.Lock()
			detached := p.detached
			p.mu.Unlock()
			if detached {
				return
			}
			if pid != 0 && pidAlive(pid) {
				begin := time.Now()
				terminate(pid, s.cfg.StopTimeout, exited)
				s.cfg.Logger.Info("process stopped", "name", p.name, "pid", pid, "took", time.Since(begin).Round(time.Millisecond))
			}
			os.Remove(p.spec.PIDFile)
			return
		case err := <-exited:
			os.Remove(p.spec.PIDFile)
			if time.Since(started) > time.Minute {
				backoff = s.cfg.MinBackoff
			}
			s.cfg.Logger.Warn("process exited; restarting", "name", p.name, "pid", pid, "err", err, "after", backoff)
		}
		p.mu.Lock()
		p.pid = 0
		p.restarts++
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

func (s *Supervisor) start(p *proc) (*exec.Cmd, error) {
	logFile, err := os.OpenFile(p.spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("supervisor: open log: %w", err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "---- %s starting %s\n", time.Now().Format(time.RFC3339), p.name)
	cmd := exec.Command(s.cfg.Binary, p.spec.Args...)
	if p.spec.NetNS != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=" + netns.Path(p.spec.NetNS), "--", s.cfg.Binary}, p.spec.Args...)...)
	}
	// The pidfile says the process is starting, and how to know it, before
	// it starts: an engine that crashes before the PID is written leaves
	// a process the next one still finds (and adopts or stops) rather
	// than one it knows nothing of, holding the ports of the one it
	// starts.
	nonce := newNonce()
	if err := writeStartingPIDFile(p.spec.PIDFile, nonce, p.spec.hash()); err != nil {
		return nil, err
	}
	cmd.Env = append(append(os.Environ(), p.spec.Env...), startEnv+"="+nonce)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Own process group: a Ctrl-C on the engine's terminal does not reach the
	// control plane, which the engine stops in order instead, and an engine
	// crash leaves the control plane running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("supervisor: start %s: %w", p.name, err)
	}
	if err := writePIDFile(p.spec.PIDFile, cmd.Process.Pid, p.spec.hash()); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return cmd, nil
}

// StopRecorded stops a process no supervisor here runs, recorded in its
// pidfile by an earlier engine (a PID that is no longer the process's is
// left alone), and removes the pidfile.
func (s *Supervisor) StopRecorded(pidFile string) {
	if pid, _, err := readPIDFile(pidFile); err == nil {
		terminate(pid, s.cfg.StopTimeout, nil)
	}
	_ = os.Remove(pidFile)
}

func closedWith(err error) <-chan error {
	ch := make(chan error, 1)
	ch <- err
	return ch
}

// terminate sends SIGTERM, waits up to timeout, then SIGKILL. exited, when
// not nil, reports the process's end; otherwise the PID is polled.
func terminate(pid int, timeout time.Duration, exited <-chan error) {
	if exited == nil {
		exited = watchPID(pid)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(timeout):
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-exited
}

// watchPID reports when a process that is not our child ends.
func watchPID(pid int) <-chan error {
	ch := make(chan error, 1)
	start := startTime(pid)
	go func() {
		for pidAlive(pid) && startTime(pid) == start {
			time.Sleep(100 * time.Millisecond)
		}
		ch <- errors.New("process ended")
	}()
	return ch
}

func pidAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie child still answers signal 0.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(afterComm(string(stat)))
	return len(fields) > 0 && fields[0] != "Z"
}

// afterComm returns /proc/PID/stat after the "(comm)" field.
func afterComm(stat string) string {
	if i := strings.LastIndexByte(stat, ')'); i >= 0 {
		return stat[i+1:]
	}
	return stat
}

// startTime returns the process's start time in clock ticks since boot (field
// 22 of /proc/PID/stat), which tells a reused PID from the original.
func startTime(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	fields := strings.Fields(afterComm(string(stat)))
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

// A pidfile is "PID STARTTIME HASH" once the process runs, and "0 NONCE
// HASH" while it starts: the process then carries NONCE in startEnv.
const startEnv = "KUBEYARD_SUPERVISOR_START"

func newNonce() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(os.Getpid())
}

// startedWith is the process started with nonce (the first of them: its
// children inherit the variable), or 0.
func startedWith(nonce string) int {
	want := []byte(startEnv + "=" + nonce + "\x00")
	dirs, _ := os.ReadDir("/proc")
	found, first := 0, ""
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) || !pidAlive(pid) {
			continue
		}
		if st := startTime(pid); found == 0 || lessStartTime(st, first) {
			found, first = pid, st
		}
	}
	return found
}

// lessStartTime compares two start times (clock ticks since boot).
func lessStartTime(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x < y
}

func writePIDFile(path string, pid int, hash string) error {
	return writeFileAtomic(path, fmt.Sprintf("%d %s %s\n", pid, startTime(pid), hash))
}

func writeStartingPIDFile(path, nonce, hash string) error {
	return writeFileAtomic(path, fmt.Sprintf("0 %s %s\n", nonce, hash))
}

func writeFileAtomic(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("supervisor: pidfile: %w", err)
	}
	return os.Rename(tmp, path)
}

// readPIDFile returns the PID and configuration hash of a live process
// recorded in path (one that was starting is found by its nonce); a dead
// or reused PID is an error.
func readPIDFile(path string) (int, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(string(data))
	if len(f) != 3 {
		return 0, "", fmt.Errorf("supervisor: malformed pidfile %s", path)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, "", err
	}
	if pid == 0 {
		if pid = startedWith(f[1]); pid == 0 {
			os.Remove(path)
			return 0, "", fmt.Errorf("supervisor: the process starting in %s is gone", path)
		}
		return pid, f[2], nil
	}
	if !pidAlive(pid) || startTime(pid) != f[1] {
		os.Remove(path)
		return 0, "", fmt.Errorf("supervisor: process %d is gone", pid)
	}
	return pid, f[2], nil
}
