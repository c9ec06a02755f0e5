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

// TestJoinCommandJoinsAnotherMachine: the worker join command kubeyard
// prints joins a node from another data dir (standing in for another
// machine); a wrong CA hash fails and writes nothing.
func TestJoinCommandJoinsAnotherMachine(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	bin := harness.Binary(t)
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)

	kubeyard := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	engineFlags := []string{"--data-dir", e.DataDir, "--addr", e.Addr, "--project", e.Project, "--location", zone}
	line, err := kubeyard(append([]string{"clusters", "join-command", "demo"}, engineFlags...)...)
	if err != nil {
		t.Fatalf("join-command: %v\n%s", err, line)
	}
	re := regexp.MustCompile(`^kubeyard join (127\.[0-9.]+) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})$`)
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("join command %q does not look like kubeadm's", line)
	}
	endpoint, token, hash := m[1], m[2], m[3]

	// A wrong CA hash: refused, nothing written.
	wrongDir := filepath.Join(e.Dir, "wrong-machine")
	out, err := kubeyard("join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", "sha256:"+strings.Repeat("0", 64), "--data-dir", wrongDir, "--node-name", "wrong-node")
	if err == nil || !strings.Contains(out, "does not match") {
		t.Fatalf("join with a wrong hash: %v\n%s", err, out)
	}
	if _, err := os.Stat(wrongDir); !os.IsNotExist(err) {
		t.Fatal("a refused join wrote files")
	}

	// The printed command joins a node from another data dir.
	joinCmd := exec.Command(bin, "join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", hash,
		"--data-dir", filepath.Join(e.Dir, "other-machine"), "--node-name", "byo-node-1")
	joinCmd.Stdout, joinCmd.Stderr = os.Stderr, os.Stderr
	if err := joinCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if joinCmd.ProcessState == nil {
			joinCmd.Process.Kill()
			joinCmd.Wait()
		}
	})
	e.Eventually(90*time.Second, func() error {
		if _, ok := readyNodes(t, e)["byo-node-1"]; !ok {
			return fmt.Errorf("byo-node-1 is not Ready")
		}
		return nil
	})
	if user := e.Kubectl("get", "csr", "-o", "jsonpath={.items[*].spec.username}"); !strings.Contains(user, "system:bootstrap:"+token[:6]) {
		t.Errorf("the node was not bootstrapped with the printed token: CSR users %q", user)
	}
	joinCmd.Process.Signal(syscall.SIGTERM)
	if err := joinCmd.Wait(); err != nil {
		t.Errorf("kubeyard join after SIGTERM: %v", err)
	}

	// The control-plane variant carries a new certificate key and uploads
	// the certificates again.
	line, err = kubeyard(append([]string{"clusters", "join-command", "demo", "--control-plane"}, engineFlags...)...)
	if err != nil || !regexp.MustCompile(` --control-plane --certificate-key [0-9a-f]{64}$`).MatchString(line) {
		t.Fatalf("control-plane join command: %v %q", err, line)
	}
	if owner := e.Kubectl("get", "secret", "-n", "kube-system", "kubeadm-certs", "-o", "jsonpath={.metadata.ownerReferences[0].name}"); !strings.HasPrefix(owner, "bootstrap-token-") {
		t.Fatalf("kubeadm-certs owner %q", owner)
	}
	if key, err := kubeyard("certificate-key"); err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(key) {
		t.Fatalf("certificate-key: %v %q", err, key)
	}

	// upload-certs (kubeadm init phase upload-certs) prints the key; a join
	// command given that key carries it and uploads nothing.
	key, err := kubeyard(append([]string{"clusters", "upload-certs", "demo"}, engineFlags...)...)
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(key) {
		t.Fatalf("upload-certs: %v %q", err, key)
	}
	secretVersion := func() string {
		return e.Kubectl("get", "secret", "-n", "kube-system", "kubeadm-certs", "-o", "jsonpath={.metadata.resourceVersion}")
	}
	uploaded := secretVersion()
	line, err = kubeyard(append([]string{"clusters", "join-command", "demo", "--control-plane", "--certificate-key", key}, engineFlags...)...)
	if err != nil || !strings.HasSuffix(line, " --control-plane --certificate-key "+key) {
		t.Fatalf("join-command with the uploaded key: %v %q", err, line)
	}
	if now := secretVersion(); now != uploaded {
		t.Fatalf("join-command --certificate-key uploaded the certificates again (%s -> %s)", uploaded, now)
	}
	for _, bad := range [][]string{
		{"clusters", "upload-certs", "demo", "--certificate-key", "abc"},
		{"clusters", "join-command", "demo", "--certificate-key", key},
		{"clusters", "join-command", "demo", "--ttl", "-1h"},
	} {
		if out, err := kubeyard(append(bad, engineFlags...)...); err == nil || !strings.Contains(out, "INVALID_ARGUMENT") {
			t.Errorf("%v: want INVALID_ARGUMENT, got %v %q", bad, err, out)
		}
	}

	// --ttl 0: a token that never expires, as kubeadm's.
	line, err = kubeyard(append([]string{"clusters", "join-command", "demo", "--ttl", "0"}, engineFlags...)...)
	if m := re.FindStringSubmatch(line); err != nil || m == nil {
		t.Fatalf("join-command --ttl 0: %v %q", err, line)
	} else if exp := e.Kubectl("get", "secret", "-n", "kube-system", "bootstrap-token-"+m[2][:6], "-o", "jsonpath={.data.expiration}"); exp != "" {
		t.Fatalf("a --ttl 0 token expires: %q", exp)
	}

	// An expired token is refused and the join writes nothing. The token
	// cleaner deletes it at expiry; kube-apiserver's clock decides.
	line, err = kubeyard(append([]string{"clusters", "join-command", "demo", "--ttl", "2s"}, engineFlags...)...)
	m = re.FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("join-command --ttl 2s: %v %q", err, line)
	}
	e.Eventually(30*time.Second, func() error {
		if _, err := e.Run("kubectl", "get", "secret", "-n", "kube-system", "bootstrap-token-"+m[2][:6]); err == nil {
			return fmt.Errorf("the expired token is still there")
		}
		return nil
	})
	expiredDir := filepath.Join(e.Dir, "late-machine")
	out, err = kubeyard("join", m[1], "--token", m[2], "--discovery-token-ca-cert-hash", m[3], "--discovery-timeout", "5s", "--data-dir", expiredDir, "--node-name", "late-node")
	if err == nil || !strings.Contains(out, "has expired") {
		t.Fatalf("join with an expired token: %v\n%s", err, out)
	}
	if _, err := os.Stat(expiredDir); !os.IsNotExist(err) {
		t.Fatal("a join with an expired token wrote files")
	}
}
