package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestCLIFindsItsEngine: a user runs `eval "$(kubeyard env --data-dir X
// --addr Y)"` once; every kubeyard command then finds the engine, its
// token and the project without --addr, --data-dir or --project, and the
// root help shows kubeyard's flags only.
func TestCLIFindsItsEngine(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	bin := harness.Binary(t)
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)

	exports, err := exec.Command(bin, "env", "--data-dir", e.DataDir, "--addr", e.Addr, "--project", e.Project).Output()
	if err != nil {
		t.Fatal(err)
	}
	var env []string // the user's shell: nothing of the engine but what `kubeyard env` said
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOUDSDK_") && !strings.HasPrefix(kv, "KUBEYARD_") {
			env = append(env, kv)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(exports)), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		env = append(env, k+"="+strings.Trim(v, "'"))
	}
	cwd := t.TempDir()
	command := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, cwd
		return cmd
	}
	kubeyard := func(args ...string) string {
		t.Helper()
		out, err := command(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubeyard %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}

	if out := kubeyard("clock", "show"); !strings.Contains(out, `"offset"`) {
		t.Errorf("clock show: %s", out)
	}
	line := kubeyard("clusters", "join-command", "demo", "--location", zone)
	m := regexp.MustCompile(`^kubeyard join (\S+) --token (\S+) --discovery-token-ca-cert-hash (\S+)$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("join-command: %q", line)
	}
	if key := kubeyard("clusters", "upload-certs", "demo", "--location", zone); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(key) {
		t.Errorf("upload-certs: %q", key)
	}

	// The printed join, as printed (plus a name and an address of its own):
	// the machine keeps its files beside the engine's.
	join := command("join", m[1], "--token", m[2], "--discovery-token-ca-cert-hash", m[3], "--node-name", "cli-node", "--kubelet-ip", e.SpareIP(2))
	join.Stdout, join.Stderr = os.Stderr, os.Stderr
	if err := join.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- join.Wait() }()
	t.Cleanup(func() { join.Process.Kill() })
	e.Eventually(90*time.Second, func() error {
		if _, ok := readyNodes(t, e)["cli-node"]; !ok {
			return fmt.Errorf("cli-node is not Ready")
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(e.DataDir, "machines", "cli-node", "kubelet.conf")); err != nil {
		t.Errorf("the joined machine's files: %v", err)
	}
	join.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Errorf("kubeyard join after SIGTERM: %v", err)
	}

	kubeyard("update", "credentials", "--cluster-ca", "--cluster-name", "demo")
	if _, err := os.Stat(filepath.Join(cwd, "kubeyard-workspace", "demo", "demo-kubeconfig")); err != nil {
		t.Errorf("update credentials wrote no kubeconfig: %v", err)
	}

	if help := kubeyard("--help"); strings.Contains(help, "--version") {
		t.Errorf("the root help shows an upstream component's flag:\n%s", help)
	}
}
