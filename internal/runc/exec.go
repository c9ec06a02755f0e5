package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/creack/pty"
	utilexec "k8s.io/utils/exec"
)

// Process is a process to run in a running container (kubectl exec). It
// runs as the container's process does (user, capabilities, environment,
// with Env added) unless told otherwise.
type Process struct {
	Args []string
	Env  []string
	// Terminal gives the process a terminal: its output is one stream
	// (Stdout), and Resize changes its size.
	Terminal bool
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Resize   <-chan Size
}

// Size is a terminal's size.
type Size struct{ Width, Height uint16 }

// Exec runs p in the container and waits for it to end. A process that
// exits non-zero is a utilexec.ExitError with its code; a process runc
// could not start (no such program) is an error with runc's word.
func (r Runtime) Exec(ctx context.Context, id, bundle string, p Process) error {
	logFile, err := os.CreateTemp(bundle, "exec-*.log")
	if err != nil {
		return fmt.Errorf("runc exec: %w", err)
	}
	logFile.Close()
	defer os.Remove(logFile.Name())
	args := []string{"--log", logFile.Name(), "--log-format", "json", "exec"}
	if p.Terminal {
		args = append(args, "--tty")
	}
	for _, e := range p.Env {
		args = append(args, "--env", e)
	}
	cmd := r.command(ctx, append(append(args, id), p.Args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if p.Terminal {
		err = r.execTerminal(cmd, p)
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = p.Stdin, p.Stdout, p.Stderr
		err = cmd.Run()
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return err
	}
	if said := runcErrors(logFile.Name()); said != "" {
		return fmt.Errorf("runc exec %s: %s", id, said)
	}
	return utilexec.CodeExitError{Err: err, Code: exit.ExitCode()}
}

// execTerminal runs a runc exec --tty with a terminal of its own as its
// standard streams: runc makes the process's terminal, copies between the
// two, and passes on the size of its own when told (SIGWINCH, which the
// kernel sends when the size is set).
func (r Runtime) execTerminal(cmd *exec.Cmd, p Process) error {
	master, tty, err := pty.Open()
	if err != nil {
		return fmt.Errorf("runc exec: terminal: %w", err)
	}
	defer master.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr.Setctty = true
	if err := cmd.Start(); err != nil {
		tty.Close()
		return err
	}
	tty.Close()
	if p.Stdin != nil {
		go io.Copy(master, p.Stdin)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s, ok := <-p.Resize:
				if !ok {
					return
				}
				_ = pty.Setsize(master, &pty.Winsize{Cols: s.Width, Rows: s.Height})
			case <-done:
				return
			}
		}
	}()
	copied := make(chan struct{})
	go func() {
		// Ends with EIO once every holder of the terminal is gone.
		_, _ = io.Copy(p.Stdout, master)
		close(copied)
	}()
	err = cmd.Wait()
	<-copied
	return err
}

// runcErrors is what runc logged at level error.
func runcErrors(logFile string) string {
	data, _ := os.ReadFile(logFile)
	var msgs []string
	for _, line := range strings.Split(string(data), "\n") {
		var entry struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Level == "error" {
			msgs = append(msgs, entry.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}
