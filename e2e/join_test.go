package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)

	kubeyard := func(args ...string) (string, error) {
		out, err := e.Kubeyard(args...)
		return strings.TrimSpace(out), err
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
	joinCmd := e.StartKubeyard(nil, "join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", hash,
		"--data-dir", e.MachineDir("other-machine"), "--node-name", "byo-node-1")
	e.Eventually(90*time.Second, func() error {
		if _, ok := readyNodes(t, e)["byo-node-1"]; !ok {
			return fmt.Errorf("byo-node-1 is not Ready")
		}
		return nil
	})
	if user := e.Kubectl("get", "csr", "-o", "jsonpath={.items[*].spec.username}"); !strings.Contains(user, "system:bootstrap:"+token[:6]) {
		t.Errorf("the node was not bootstrapped with the printed token: CSR users %q", user)
	}
	joinCmd.Signal(syscall.SIGTERM)
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

// TestJoinControlPlaneMachine: the control-plane join command kubeyard
// prints joins a fourth replica from another data dir (standing in for
// another machine): it gets the shared certificates with the certificate
// key (a wrong key fails and writes nothing), joins etcd as a voting member,
// and its kube-apiserver serves through the cluster's load balancer. When
// it stops it leaves the cluster, as kubeadm reset does.
func TestJoinControlPlaneMachine(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "ha", "--region", "us-central1", "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")
	clusterDir := e.ClusterDir()

	out, err := e.Kubeyard("clusters", "join-command", "ha", "--control-plane", "--data-dir", e.DataDir, "--addr", e.Addr, "--project", e.Project, "--location", "us-central1")
	line := strings.TrimSpace(out)
	m := regexp.MustCompile(`^kubeyard join (\S+) --token (\S+) --discovery-token-ca-cert-hash (\S+) --control-plane --certificate-key ([0-9a-f]{64})$`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("join-command --control-plane: %v %q", err, line)
	}
	joinArgs := func(key, dir string) []string {
		return []string{"join", m[1], "--token", m[2], "--discovery-token-ca-cert-hash", m[3], "--control-plane", "--certificate-key", key,
			"--data-dir", dir, "--apiserver-advertise-address", e.SpareIP(1)}
	}

	// A wrong certificate key: refused, nothing written.
	wrongDir := e.MachineDir("wrong-machine")
	wrongKey := strings.Repeat("ab", 32)
	if out, err := e.Kubeyard(joinArgs(wrongKey, wrongDir)...); err == nil || !strings.Contains(string(out), "does not decrypt") {
		t.Fatalf("join with a wrong certificate key: %v\n%s", err, out)
	}
	if _, err := os.Stat(wrongDir); !os.IsNotExist(err) {
		t.Fatal("a refused control-plane join wrote files")
	}

	// The printed command, run from another data dir.
	machineDir := e.MachineDir("cp-machine")
	joinCmd := e.StartKubeyard(nil, joinArgs(m[4], machineDir)...)
	e.Eventually(120*time.Second, func() error {
		members := etcdMembers(t, filepath.Join(clusterDir, "cp-0"))
		if !slices.Contains(members, "ha-cp-3") {
			return fmt.Errorf("etcd members %v: no voting ha-cp-3", members)
		}
		return nil
	})

	// Requests through the endpoint reach the fourth kube-apiserver: count
	// the GETs of a ConfigMap that does not exist, which nothing else asks
	// for, in its metrics.
	fourth := "https://" + net.JoinHostPort(e.SpareIP(1), "6443")
	probes := func() int {
		raw, err := e.Run("kubectl", "get", "--raw", "/metrics", "--server", fourth)
		if err != nil {
			return -1
		}
		n := 0
		for _, l := range strings.Split(raw, "\n") {
			if strings.HasPrefix(l, "apiserver_request_total{") && strings.Contains(l, `code="404"`) && strings.Contains(l, `resource="configmaps"`) && strings.Contains(l, `verb="GET"`) {
				v, _ := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
				n += int(v)
			}
		}
		return n
	}
	e.Eventually(60*time.Second, func() error {
		before := probes()
		if before < 0 {
			return fmt.Errorf("the fourth kube-apiserver does not answer")
		}
		for range 12 {
			e.Run("kubectl", "get", "configmap", "no-such-configmap") // a new connection each time
		}
		if after := probes(); after <= before {
			return fmt.Errorf("no request through the endpoint reached the fourth replica (%d -> %d)", before, after)
		}
		return nil
	})

	// The engine cannot reach a joined machine's certificates, so a CA
	// rotation is refused while it is there, naming it.
	if out, err := e.Kubeyard("update", "credentials", "--cluster-ca", "--cluster-name", "ha", "--location", "us-central1"); err == nil || !strings.Contains(out, "FAILED_PRECONDITION") || !strings.Contains(out, e.SpareIP(1)) {
		t.Errorf("a CA rotation with a joined control-plane machine: %v\n%s", err, out)
	}

	// Stopped, it leaves: etcd has three members again, and its files and
	// processes are gone.
	joinCmd.Signal(syscall.SIGTERM)
	if err := joinCmd.Wait(); err != nil {
		t.Fatalf("kubeyard join --control-plane after SIGTERM: %v", err)
	}
	if members := etcdMembers(t, filepath.Join(clusterDir, "cp-0")); len(members) != 3 || slices.Contains(members, "ha-cp-3") {
		t.Fatalf("etcd members after the replica left: %v", members)
	}
	if pids, _ := filepath.Glob(filepath.Join(machineDir, "run", "*.pid")); len(pids) != 0 {
		t.Fatalf("processes left by the replica: %v", pids)
	}
	if _, err := os.Stat(filepath.Join(machineDir, "cp-3")); !os.IsNotExist(err) {
		t.Fatal("the replica's certificates and data remain")
	}
	if _, err := e.Run("kubectl", "get", "--raw", "/readyz"); err != nil {
		t.Fatalf("the cluster after the replica left: %v", err)
	}
}
