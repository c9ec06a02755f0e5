package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestClusterLifecycleDetails covers what the main flow does not: pods that
// are deleted go away, nodes renew their Leases, a killed kube-apiserver is
// restarted by the supervisor, node pools are deleted, the older zones/
// paths answer, server config, and node count validation.
func TestClusterLifecycleDetails(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "life", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "life", "--zone", zone)

	// Pods: deleted ones go away.
	e.Kubectl("apply", "-f", filepath.Join(harness.RepoRoot(), "examples", "pod-2.yaml"))
	e.Eventually(60*time.Second, func() error {
		if phase := e.Kubectl("get", "pod", "pod-2", "-o", "jsonpath={.status.phase}"); phase != "Running" {
			return fmt.Errorf("pod-2 is %q", phase)
		}
		return nil
	})
	e.Kubectl("delete", "pod", "pod-2", "--wait=true", "--timeout=60s")
	if out := e.Kubectl("get", "pods", "-o", "name"); strings.Contains(out, "pod-2") {
		t.Fatalf("deleted pod still listed: %s", out)
	}

	// Leases are renewed.
	node := strings.TrimSpace(e.Kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"))
	renew := func() string {
		return e.Kubectl("get", "lease", "-n", "kube-node-lease", node, "-o", "jsonpath={.spec.renewTime}")
	}
	first := renew()
	e.Eventually(30*time.Second, func() error {
		if renew() == first {
			return fmt.Errorf("lease of %s not renewed since %s", node, first)
		}
		return nil
	})

	// A killed kube-apiserver is restarted, and kubectl works again.
	apiserver := e.ComponentPID("kube-apiserver-0@")
	if err := syscall.Kill(apiserver, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.Eventually(60*time.Second, func() error {
		if pid := e.ComponentPID("kube-apiserver-0@"); pid == 0 || pid == apiserver {
			return fmt.Errorf("kube-apiserver not restarted yet")
		}
		_, err := e.Run("kubectl", "get", "nodes")
		return err
	})

	// Node pools are deleted with their nodes.
	e.Gcloud("container", "node-pools", "create", "temp", "--cluster", "life", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "node-pools", "delete", "temp", "--cluster", "life", "--zone", zone, "--quiet")
	if out := e.Kubectl("get", "nodes", "-o", "name"); strings.Contains(out, "-temp-") {
		t.Fatalf("nodes of a deleted pool remain: %s", out)
	}
	if pools := e.Gcloud("container", "node-pools", "list", "--cluster", "life", "--zone", zone, "--format", "value(name)"); strings.TrimSpace(pools) != "default-pool" {
		t.Fatalf("pools after delete: %q", pools)
	}

	// The older zones/ paths and getServerConfig.
	tok := e.Token()
	code, body := e.API("GET", "/v1/projects/"+e.Project+"/zones/"+zone+"/clusters/life", tok, nil)
	if code != 200 || body["name"] != "life" {
		t.Fatalf("zones/ path: %d %v", code, body)
	}
	code, body = e.API("POST", "/v1/projects/"+e.Project+"/zones/"+zone+"/clusters/life/nodePools/default-pool/setSize", tok, map[string]any{"nodeCount": -1})
	if status, _, field, _ := errorOf(t, body); code != 400 || status != "INVALID_ARGUMENT" || field != "nodeCount" {
		t.Fatalf("setSize -1: %d %v", code, body)
	}
	code, body = e.API("POST", "/v1/projects/"+e.Project+"/locations/"+zone+"/clusters/life/nodePools/default-pool:setSize", tok, map[string]any{"nodeCount": 5000})
	if status, _, _, _ := errorOf(t, body); code != 400 || status != "INVALID_ARGUMENT" {
		t.Fatalf("setSize 5000: %d %v", code, body)
	}
	var cfg struct{ DefaultClusterVersion string }
	if err := json.Unmarshal([]byte(e.Gcloud("container", "get-server-config", "--zone", zone, "--format", "json")), &cfg); err != nil || !strings.HasPrefix(cfg.DefaultClusterVersion, "1.37.") {
		t.Fatalf("server config: %+v %v", cfg, err)
	}

	// A zonal control plane "upgraded" to its own version restarts in
	// place: new processes, the same etcd data.
	e.Kubectl("create", "configmap", "survivor", "--from-literal=k=v")
	before := e.ComponentPIDs()
	e.Gcloud("container", "clusters", "upgrade", "life", "--master", "--cluster-version", cfg.DefaultClusterVersion, "--zone", zone, "--quiet")
	for name, pid := range e.ComponentPIDs() {
		if before[name] == pid {
			t.Errorf("%s (pid %d) was not restarted by the control-plane recreation", name, pid)
		}
	}
	if v := e.Kubectl("get", "configmap", "survivor", "-o", "jsonpath={.data.k}"); v != "v" {
		t.Fatalf("the cluster's data did not survive the recreation: %q", v)
	}
	if op := e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_MASTER", "--format", "value(status)"); strings.TrimSpace(op) != "DONE" {
		t.Fatalf("UPGRADE_MASTER operation: %q", op)
	}
}

// TestCancelOperation: a cancelled create ends DONE with a CANCELLED error,
// the cluster is left in ERROR (as in GKE), and deleting it cleans up.
func TestCancelOperation(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "doomed", "--zone", zone, "--num-nodes", "1", "--async")
	op := strings.TrimSpace(e.Gcloud("container", "operations", "list", "--format", "value(name)"))
	e.Gcloud("container", "operations", "cancel", op, "--zone", zone, "--quiet")
	out, _ := e.Run("gcloud", "container", "operations", "wait", op, "--zone", zone)
	var got struct {
		Status string
		Error  struct {
			Code    int
			Message string
		}
	}
	if err := json.Unmarshal([]byte(e.Gcloud("container", "operations", "describe", op, "--zone", zone, "--format", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != "DONE" || got.Error.Code != 1 {
		t.Fatalf("cancelled operation: %+v (wait said %s)", got, out)
	}
	if st := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "doomed", "--zone", zone, "--format", "value(status)")); st != "ERROR" {
		t.Fatalf("cluster after a cancelled create is %s", st)
	}
	e.Gcloud("container", "clusters", "delete", "doomed", "--zone", zone, "--quiet")
	if pids := e.ComponentPIDs(); len(pids) != 0 {
		t.Fatalf("processes left after deleting a cancelled cluster: %v", pids)
	}
}
