package runc_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utilexec "k8s.io/utils/exec"

	"github.com/kubeyard/kubeyard/internal/runc"
	"github.com/kubeyard/kubeyard/internal/runc/runctest"
)

// kubectl exec's cases: streams apart, an exit code, standard input, a
// program that is not there, and a terminal of a given size.
func TestExec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := runctest.New(t)
	c := env.Container("exec", "sleep", "60")
	bundle := filepath.Join(env.Dir, "bundle")
	if err := runc.WriteBundle(bundle, c); err != nil {
		t.Fatal(err)
	}
	if err := env.Runc.Create(ctx, c.ID, bundle, runc.Stdio{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Runc.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	exec := func(p runc.Process) (string, string, error) {
		var out, errOut bytes.Buffer
		p.Stdout, p.Stderr = &out, &errOut
		err := env.Runc.Exec(ctx, c.ID, bundle, p)
		return out.String(), errOut.String(), err
	}

	out, errOut, err := exec(runc.Process{Args: []string{"sh", "-c", "echo out $GREETING; echo err >&2; exit 3"}, Env: []string{"GREETING=hi"}})
	var exit utilexec.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 || out != "out hi\n" || errOut != "err\n" {
		t.Errorf("exit 3: %q %q %v", out, errOut, err)
	}
	out, _, err = exec(runc.Process{Args: []string{"cat"}, Stdin: strings.NewReader("from stdin")})
	if err != nil || out != "from stdin" {
		t.Errorf("stdin: %q %v", out, err)
	}
	_, _, err = exec(runc.Process{Args: []string{"/no/such/program"}})
	if err == nil || errors.As(err, &exit) || !strings.Contains(err.Error(), "/no/such/program") {
		t.Errorf("a missing program: %v", err)
	}
	resize := make(chan runc.Size, 1)
	resize <- runc.Size{Width: 100, Height: 30}
	// runc sizes the container's terminal just after the process starts
	// (so does containerd's shim); stty size prints nothing before then.
	sized := "tty; i=0; while [ $i -lt 50 ]; do s=$(stty size 2>/dev/null); [ -n \"$s\" ] && break; i=$((i+1)); sleep 0.1; done; echo $s"
	out, _, err = exec(runc.Process{Args: []string{"sh", "-c", sized}, Terminal: true, Resize: resize, Stdin: strings.NewReader("")})
	// runc clears ONLCR on the container's terminal once it holds it, and
	// lines written before then reach us \r\r\n (1 run in 15).
	out = strings.ReplaceAll(out, "\r\r\n", "\r\n")
	if err != nil || out != "/dev/pts/0\r\n30 100\r\n" {
		t.Errorf("terminal: %q %v", out, err)
	}
}
