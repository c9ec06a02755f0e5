package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/pki"
)

// retiredStage is the stage with which a CA rotation stops trusting the
// old CA: clients with old credentials may fail from then on, not before.
const retiredStage = "CA rotation 3/3"

// kubeyardCLI runs the kubeyard binary against the engine.
func kubeyardCLI(t *testing.T, e *harness.Engine, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), append(args, "--data-dir", e.DataDir, "--addr", e.Addr, "--project", e.Project)...)
	cmd.Dir = e.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fingerprint is the SHA-256 of a PKI file.
func fingerprint(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// handIssued writes a kubeconfig with a client certificate issued by hand
// from the cluster CA, as an administrator would with openssl.
func handIssued(t *testing.T, pkiDir, server, path string) {
	t.Helper()
	ca, err := pki.Load(pkiDir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(pki.Leaf{CommonName: "hand-made-admin", Organizations: []string{"kubeadm:cluster-admins"}, Usages: pki.ClientUsage}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.Bundle(pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := pki.Kubeconfig{Server: server, ClusterName: "hand", User: "hand-made-admin", CAPEM: bundle, Client: client}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies a file (a kubeconfig kept from before a rotation).
func copyFile(t *testing.T, from, to string) string {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestClusterCARotation follows seeds/001 on a regional cluster: `kubeyard
// update credentials --cluster-ca` rolls a new cluster CA in while a client
// with the old credentials sends requests the whole time (none fails until
// the old CA is retired), prints its progress, writes the new kubeconfig and
// the log into the workspace, and leaves the etcd and front-proxy CAs as
// they were. Afterwards the old credentials, and a certificate issued by
// hand from the old CA, are refused; nodes stay Ready and keep their names.
func TestClusterCARotation(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "ha", "--region", "us-central1", "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")
	clusterDir := e.ClusterDir()
	nodesBefore := readyNodes(t, e)
	endpoint := "https://" + strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "ha", "--region", "us-central1", "--format", "value(endpoint)"))

	kept := map[string]string{}
	for i := range 3 {
		for _, f := range []string{"etcd/ca.crt", "front-proxy-ca.crt"} {
			path := filepath.Join(clusterDir, "cp-"+string(rune('0'+i)), "pki", f)
			kept[path] = fingerprint(t, path)
		}
	}
	oldCA := fingerprint(t, filepath.Join(clusterDir, "cp-0", "pki", "ca.crt"))
	oldAdmin := copyFile(t, filepath.Join(clusterDir, "cp-0", "admin.conf"), filepath.Join(e.Dir, "old-admin.conf"))
	oldGcloud := copyFile(t, filepath.Join(e.Dir, "kubeconfig"), filepath.Join(e.Dir, "old-gcloud.kubeconfig"))
	hand := filepath.Join(e.Dir, "hand.kubeconfig")
	handIssued(t, filepath.Join(clusterDir, "cp-0", "pki"), endpoint, hand)
	if _, err := e.Run("kubectl", "--kubeconfig", hand, "get", "namespaces"); err != nil {
		t.Fatalf("the hand-issued certificate does not work before the rotation: %v", err)
	}
	saToken := strings.TrimSpace(e.Kubectl("create", "token", "default", "--duration", "1h"))

	old := e.Client(oldAdmin)
	var failures harness.Failures
	watch := e.WatchStage("us-central1", retiredStage)
	var out string
	var took time.Duration
	load := harness.UnderLoad(failures.Track(harness.Reads(old)), func() {
		begin := time.Now()
		var err error
		out, err = kubeyardCLI(t, e, "update", "credentials", "--cluster-ca", "--cluster-name", "ha", "--workspace", filepath.Join(e.Dir, "ws"))
		took = time.Since(begin)
		if err != nil {
			t.Fatalf("update credentials: %v\n%s", err, out)
		}
	})
	watch.Stop()
	failedBefore := failures.Count(watch.Before)
	t.Logf("cluster CA rotated (regional, 3 replicas) in %.1f s; old-credential client: %d ok, %d failed, %d of them before the old CA was retired\n%s",
		took.Seconds(), load.OK, load.Failed, failedBefore, out)
	if failedBefore > 0 {
		t.Errorf("%d requests with the old credentials failed before the old CA was retired", failedBefore)
	}
	for _, want := range []string{"CA rotation 1/3", "CA rotation 2/3", retiredStage, "restarted kube-controller-manager-2", "every kube-apiserver serves its new certificate", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("the progress does not mention %q", want)
		}
	}

	// The workspace has the new kubeconfig and the log of this run.
	newKubeconfig := filepath.Join(e.Dir, "ws", "ha", "ha-kubeconfig")
	if _, err := e.Run("kubectl", "--kubeconfig", newKubeconfig, "get", "nodes"); err != nil {
		t.Fatalf("the new kubeconfig: %v", err)
	}
	logs, _ := filepath.Glob(filepath.Join(e.Dir, "ws", "ha", "log", "update-credentials-*", "update-credentials.log"))
	if len(logs) != 1 {
		t.Fatalf("want one update-credentials.log, got %v", logs)
	}
	if data, _ := os.ReadFile(logs[0]); !strings.Contains(string(data), retiredStage) {
		t.Errorf("the log does not hold the progress:\n%s", data)
	}

	// Only the cluster CA changed, on every replica alike.
	for path, fp := range kept {
		if fingerprint(t, path) != fp {
			t.Errorf("%s changed", path)
		}
	}
	newCA := fingerprint(t, filepath.Join(clusterDir, "cp-0", "pki", "ca.crt"))
	if newCA == oldCA {
		t.Fatal("ca.crt did not change")
	}
	for _, cp := range []string{"cp-1", "cp-2"} {
		if fingerprint(t, filepath.Join(clusterDir, cp, "pki", "ca.crt")) != newCA {
			t.Errorf("%s has another cluster CA", cp)
		}
		if fingerprint(t, filepath.Join(clusterDir, cp, "pki", pki.BundleFile)) != newCA {
			t.Errorf("%s still trusts more than the new CA", cp)
		}
	}

	// The old credentials are refused: the old client certificate, the
	// hand-issued one, and the old CA in a gcloud kubeconfig.
	if _, err := old.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Error("the old admin credentials still work")
	}
	if out, err := e.Run("kubectl", "--kubeconfig", hand, "get", "namespaces"); err == nil {
		t.Errorf("the hand-issued certificate still works:\n%s", out)
	}
	if out, err := e.Run("kubectl", "--kubeconfig", oldGcloud, "get", "namespaces"); err == nil || !strings.Contains(out, "x509") {
		t.Errorf("a kubeconfig with the old CA: %v\n%s", err, out)
	}
	e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")
	rootCA := e.Kubectl("get", "configmap", "kube-root-ca.crt", "-n", "default", "-o", "jsonpath={.data.ca\\.crt}")
	newPEM, _ := os.ReadFile(filepath.Join(clusterDir, "cp-0", "pki", "ca.crt"))
	if strings.TrimSpace(rootCA) != strings.TrimSpace(string(newPEM)) {
		t.Errorf("kube-root-ca.crt is not the new CA alone:\n%s", rootCA)
	}
	// The service-account key is not part of a cluster CA rotation.
	if _, err := e.Run("kubectl", "--token", saToken, "--user", "", "auth", "whoami"); err != nil {
		t.Errorf("a service-account token from before the rotation: %v", err)
	}
	nodesAfter := readyNodes(t, e)
	if len(nodesAfter) != len(nodesBefore) {
		t.Fatalf("nodes before %v, after %v", nodesBefore, nodesAfter)
	}
	for name := range nodesBefore {
		if _, ok := nodesAfter[name]; !ok {
			t.Errorf("node %s is not Ready after the rotation, or was replaced", name)
		}
	}
}
