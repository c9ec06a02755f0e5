package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Runtime runs containers with the runc binary, keeping runc's state
// under Root (one per node, so that nodes do not see each other's
// containers).
type Runtime struct {
	// Binary is runc (default: the one on PATH).
	Binary string
	Root   string
}

// ErrNotExist is a container runc does not know.
var ErrNotExist = errors.New("runc: no such container")

// State is what runc says of a container.
type State struct {
	ID      string `json:"id"`
	PID     int    `json:"pid"`
	Status  string `json:"status"` // creating, created, running, stopped
	Bundle  string `json:"bundle"`
	Created string `json:"created"`
}

// command builds a runc command with the global flags.
func (r Runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	bin := r.Binary
	if bin == "" {
		bin = "runc"
	}
	return exec.CommandContext(ctx, bin, append([]string{"--root", r.Root}, args...)...)
}

// run runs a runc command, returning its standard output; a failure
// carries the command and what runc said.
func (r Runtime) run(cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "does not exist") || strings.Contains(msg, "not exist") {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, msg)
		}
		return nil, fmt.Errorf("runc %s: %w: %s", strings.Join(cmd.Args[1:], " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// WriteBundle writes a container's bundle: its spec as config.json in dir.
func WriteBundle(dir string, c Container) error {
	data, err := json.MarshalIndent(Spec(c), "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("runc: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
}

// Stdio are a container's standard streams, as runc create gives them:
// files (nil is /dev/null; a pipe os/exec made of another writer would be
// held open by the container, and create would wait for it), or, for a
// container with a terminal, the unix socket runc sends its master to.
type Stdio struct {
	Stdin          *os.File
	Stdout, Stderr *os.File
	ConsoleSocket  string
}

// Create creates the container of the bundle in dir, its process waiting
// to be started. The process runs on after runc returns, and after this
// process ends.
func (r Runtime) Create(ctx context.Context, id, bundle string, stdio Stdio) error {
	return r.launch(ctx, "create", id, bundle, stdio)
}

// Run creates the container and starts its process at once (runc run
// --detach): one runc process where Create and Start take two.
func (r Runtime) Run(ctx context.Context, id, bundle string, stdio Stdio) error {
	return r.launch(ctx, "run", id, bundle, stdio)
}

func (r Runtime) launch(ctx context.Context, verb, id, bundle string, stdio Stdio) error {
	logFile := filepath.Join(bundle, "runc.log")
	args := []string{"--log", logFile, verb}
	if verb == "run" {
		args = append(args, "--detach")
	}
	args = append(args, "--bundle", bundle, "--pid-file", filepath.Join(bundle, "container.pid"))
	if stdio.ConsoleSocket != "" {
		args = append(args, "--console-socket", stdio.ConsoleSocket)
	}
	cmd := r.command(ctx, append(args, id)...)
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("runc %s: %w", verb, err)
	}
	defer devNull.Close()
	or := func(f *os.File) *os.File {
		if f == nil {
			return devNull
		}
		return f
	}
	// The container's stdio are the runc process's.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = or(stdio.Stdin), or(stdio.Stdout), or(stdio.Stderr)
	// Not in this process's group: a Ctrl-C of the engine is not the
	// container's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// runc's own words go to its log, the streams being the container's.
	if err := cmd.Run(); err != nil {
		said, _ := os.ReadFile(logFile)
		return fmt.Errorf("runc %s %s: %w: %s", verb, id, err, strings.TrimSpace(string(said)))
	}
	return nil
}

// Start starts a created container's process.
func (r Runtime) Start(ctx context.Context, id string) error {
	_, err := r.run(r.command(ctx, "start", id))
	return err
}

// State returns what runc says of a container.
func (r Runtime) State(ctx context.Context, id string) (State, error) {
	out, err := r.run(r.command(ctx, "state", id))
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(out, &s); err != nil {
		return State{}, fmt.Errorf("runc state %s: %w", id, err)
	}
	return s, nil
}

// List returns every container of the root.
func (r Runtime) List(ctx context.Context) ([]State, error) {
	out, err := r.run(r.command(ctx, "list", "--format", "json"))
	if err != nil {
		return nil, err
	}
	var list []State
	if len(bytes.TrimSpace(out)) == 0 || string(bytes.TrimSpace(out)) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("runc list: %w", err)
	}
	return list, nil
}

// Kill sends sig to the container's process (all of them, with all).
func (r Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(r.command(ctx, append(args, id, fmt.Sprint(int(sig)))...))
	return err
}

// Delete deletes a container (force: even if it runs, killing it); a
// container runc does not know is already deleted.
func (r Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(r.command(ctx, append(args, id)...))
	if errors.Is(err, ErrNotExist) {
		return nil
	}
	return err
}
