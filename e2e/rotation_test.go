package e2e

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestIPRotation follows seeds/000: start an IP rotation, the control plane
// answers on the old and the new IP (one certificate valid for both), every
// node pool is recreated by an UPGRADE_NODES operation so that the nodes
// use the new IP, then completion retires the old IP (connection refused)
// while the new one keeps working.
func TestIPRotation(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "2")
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)
	endpoint := func() string {
		return strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "demo", "--zone", zone, "--format", "value(endpoint)"))
	}
	oldIP := endpoint()
	before := readyNodes(t, e)
	// A PodDisruptionBudget that allows no disruption holds the drain, as
	// it holds a GKE node upgrade: the recreation stays RUNNING until it
	// goes, whatever the machine's speed.
	e.Kubectl("run", "held", "--image=busybox", "--labels=app=held", `--overrides={"spec":{"terminationGracePeriodSeconds":1}}`, "--", "sleep", "3600")
	e.Kubectl("create", "poddisruptionbudget", "held", "--selector=app=held", "--min-available=1")
	e.Kubectl("wait", "--for=condition=Ready", "pod/held", "--timeout=60s")
	e.Kubectl("wait", "--for=jsonpath={.status.currentHealthy}=1", "pdb/held", "--timeout=60s")

	e.Gcloud("container", "clusters", "update", "demo", "--zone", zone, "--start-ip-rotation", "--quiet")
	newIP := endpoint()
	if newIP == oldIP {
		t.Fatalf("describe still shows %s after the start", oldIP)
	}
	// Both answer, with a certificate valid for each (kubectl verifies it
	// against the cluster CA).
	for _, ip := range []string{oldIP, newIP} {
		if _, err := e.Run("kubectl", "get", "--raw", "/readyz", "--server", "https://"+ip); err != nil {
			t.Fatalf("the control plane does not answer on %s during the rotation: %v", ip, err)
		}
	}
	if out, err := e.Run("gcloud", "container", "clusters", "update", "demo", "--zone", zone, "--start-ip-rotation", "--quiet"); err == nil || !strings.Contains(out, "already rotating") {
		t.Fatalf("a second start: %v\n%s", err, out)
	}

	// The node pool is recreated by an UPGRADE_NODES operation, as the
	// seed document waits for it; meanwhile other operations are refused.
	var op string
	e.Eventually(30*time.Second, func() error {
		op = strings.TrimSpace(e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_NODES", "--format", "value(name)"))
		if op == "" {
			return errors.New("no UPGRADE_NODES operation")
		}
		return nil
	})
	if status := strings.TrimSpace(e.Gcloud("container", "operations", "describe", op, "--zone", zone, "--format", "value(status)")); status != "RUNNING" {
		t.Fatalf("the recreation is %s while a PodDisruptionBudget holds its drain", status)
	}
	if out, err := e.Run("gcloud", "container", "clusters", "delete", "demo", "--zone", zone, "--quiet"); err == nil || !strings.Contains(out, "incompatible operation") {
		t.Fatalf("delete during the recreation: %v\n%s", err, out)
	}
	e.Kubectl("delete", "poddisruptionbudget", "held")
	e.Gcloud("container", "operations", "wait", op, "--zone", zone)
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)
	after := readyNodes(t, e)
	if len(after) != 2 {
		t.Fatalf("want 2 Ready nodes after the recreation, got %v", after)
	}
	for name := range after {
		if _, ok := before[name]; ok {
			t.Errorf("node %s was not recreated", name)
		}
	}

	e.Gcloud("container", "clusters", "update", "demo", "--zone", zone, "--complete-ip-rotation", "--quiet")
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(oldIP, "443"), 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("the old IP %s still answers after completion", oldIP)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the old IP %s: want connection refused, got %v", oldIP, err)
	}
	if _, err := e.Run("kubectl", "get", "nodes"); err != nil {
		t.Fatalf("the new IP after completion: %v", err)
	}
	if nodes := readyNodes(t, e); len(nodes) != 2 {
		t.Fatalf("want 2 Ready nodes after completion, got %v", nodes)
	}
	if out, err := e.Run("gcloud", "container", "clusters", "update", "demo", "--zone", zone, "--complete-ip-rotation", "--quiet"); err == nil || !strings.Contains(out, "not rotating") {
		t.Fatalf("completing twice: %v\n%s", err, out)
	}
}

// TestIPRotationHeldBack: a maintenance exclusion that covers now holds the
// automatic node recreation back, so completion is refused with "requires
// recreation" and changes nothing; a node "upgrade" to the running version
// forces the recreation, and completion then goes through.
func TestIPRotationHeldBack(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "held", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "held", "--zone", zone)
	now := time.Now().UTC()
	e.Gcloud("container", "clusters", "update", "held", "--zone", zone,
		"--add-maintenance-exclusion-name", "freeze",
		"--add-maintenance-exclusion-start", now.Add(-time.Hour).Format(time.RFC3339),
		"--add-maintenance-exclusion-end", now.Add(2*time.Hour).Format(time.RFC3339))
	oldIP := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "held", "--zone", zone, "--format", "value(endpoint)"))
	e.Gcloud("container", "clusters", "update", "held", "--zone", zone, "--start-ip-rotation", "--quiet")
	e.Gcloud("container", "clusters", "get-credentials", "held", "--zone", zone) // works now and after completion

	// The engine says when maintenance holds a recreation back: once it
	// has, no recreation may have started.
	e.Eventually(30*time.Second, func() error {
		if !strings.Contains(e.Log(), `msg="node pool recreation held back" cluster=clusters/`+e.Project+`/`+zone+`/held pool=default-pool reason="maintenance exclusion freeze"`) {
			return errorf("the engine has not held the recreation back")
		}
		return nil
	})
	if ops := e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_NODES", "--format", "value(name)"); strings.TrimSpace(ops) != "" {
		t.Fatalf("a recreation started inside a maintenance exclusion: %s", ops)
	}
	out, err := e.Run("gcloud", "container", "clusters", "update", "held", "--zone", zone, "--complete-ip-rotation", "--quiet")
	if err == nil || !strings.Contains(out, `Node pool "default-pool" requires recreation.`) {
		t.Fatalf("completion with nodes on the old IP: %v\n%s", err, out)
	}
	if _, err := e.Run("kubectl", "get", "--raw", "/readyz", "--server", "https://"+oldIP); err != nil {
		t.Fatalf("a refused completion retired the old IP: %v", err)
	}

	// Bad input changes nothing: a maintenance policy written over a stale
	// resourceVersion, a recreation of a pool that does not exist, a CA
	// rotation during the IP rotation.
	cluster := fmt.Sprintf("/v1/projects/%s/locations/%s/clusters/held", e.Project, zone)
	policy := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "held", "--zone", zone, "--format", "value(maintenancePolicy.resourceVersion)"))
	code, body := e.API("POST", cluster+":setMaintenancePolicy", e.Token(), map[string]any{"maintenancePolicy": map[string]any{"resourceVersion": "stale", "window": map[string]any{"dailyMaintenanceWindow": map[string]any{"startTime": "03:00"}}}})
	if status, _, _, _ := errorOf(t, body); code != 400 || status != "FAILED_PRECONDITION" {
		t.Errorf("a stale maintenance policy: HTTP %d %v", code, body)
	}
	if now := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "held", "--zone", zone, "--format", "value(maintenancePolicy.resourceVersion)")); now != policy {
		t.Errorf("a refused maintenance policy changed it: %s -> %s", policy, now)
	}
	code, body = e.API("PUT", cluster, e.Token(), map[string]any{"update": map[string]any{"desiredNodeVersion": "-", "desiredNodePoolId": "nope"}})
	if status, _, field, _ := errorOf(t, body); code != 400 || status != "INVALID_ARGUMENT" || field != "update.desiredNodePoolId" {
		t.Errorf("recreating a pool that does not exist: HTTP %d %v", code, body)
	}
	if out, err := e.Kubeyard("update", "credentials", "--cluster-ca", "--cluster-name", "held", "--location", zone); err == nil || !strings.Contains(out, "rotating its IP") {
		t.Errorf("a CA rotation during an IP rotation: %v\n%s", err, out)
	}
	if out, err := e.Kubeyard("update", "credentials", "--cluster-name", "held", "--location", zone); err == nil || !strings.Contains(out, "--cluster-ca") {
		t.Errorf("update credentials without saying what: %v\n%s", err, out)
	}
	if out, err := e.Kubeyard("update", "credentials", "--cluster-ca", "--cluster-name", "nope"); err == nil || !strings.Contains(out, `no cluster "nope"`) {
		t.Errorf("update credentials of a cluster that does not exist: %v\n%s", err, out)
	}
	if ops := e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_NODES", "--format", "value(name)"); strings.TrimSpace(ops) != "" {
		t.Fatalf("bad input started a recreation: %s", ops)
	}

	// A node upgrade to the running version forces the recreation.
	version := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "held", "--zone", zone, "--format", "value(currentNodeVersion)"))
	e.Gcloud("container", "clusters", "upgrade", "held", "--zone", zone, "--cluster-version", version, "--node-pool", "default-pool", "--quiet")
	e.Gcloud("container", "clusters", "update", "held", "--zone", zone, "--complete-ip-rotation", "--quiet")
	if _, err := e.Run("kubectl", "get", "--raw", "/readyz", "--server", "https://"+oldIP); err == nil {
		t.Fatalf("the old IP %s still answers after completion", oldIP)
	}
	if nodes := readyNodes(t, e); len(nodes) != 1 {
		t.Fatalf("want 1 Ready node after completion, got %v", nodes)
	}
}

// TestIPRotationCompletesItself: seven days (engine clock) after the
// start, the engine tries to complete the rotation. While a maintenance
// exclusion keeps the nodes on the old IP that fails, is reported as a
// failed operation, and the old IP keeps answering; once the nodes are
// recreated the next try (an hour later) completes it.
func TestIPRotationCompletesItself(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "lazy", "--zone", zone, "--num-nodes", "1")
	now := time.Now().UTC()
	e.Gcloud("container", "clusters", "update", "lazy", "--zone", zone,
		"--add-maintenance-exclusion-name", "freeze",
		"--add-maintenance-exclusion-start", now.Add(-time.Hour).Format(time.RFC3339),
		"--add-maintenance-exclusion-end", now.Add(20*24*time.Hour).Format(time.RFC3339))
	oldIP := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "lazy", "--zone", zone, "--format", "value(endpoint)"))
	e.Gcloud("container", "clusters", "update", "lazy", "--zone", zone, "--start-ip-rotation", "--quiet")
	e.Gcloud("container", "clusters", "get-credentials", "lazy", "--zone", zone)
	advance := func(d string) {
		t.Helper()
		if code, body := e.API("POST", "/kubeyard/v1/clock:advance", e.Token(), map[string]string{"duration": d}); code != 200 {
			t.Fatalf("clock advance %s: %d %v", d, code, body)
		}
	}

	advance("168h")
	e.Eventually(30*time.Second, func() error {
		msg := e.Gcloud("container", "operations", "list", "--filter", "operationType=UPDATE_CLUSTER", "--format", "value(statusMessage)")
		if !strings.Contains(msg, "could not be completed automatically") || !strings.Contains(msg, `Node pool "default-pool" requires recreation.`) {
			return errors.New("no failed automatic completion reported")
		}
		return nil
	})
	if _, err := e.Run("kubectl", "get", "--raw", "/readyz", "--server", "https://"+oldIP); err != nil {
		t.Fatalf("a failed automatic completion retired the old IP: %v", err)
	}

	// Without the exclusion the pool is recreated at once, and the next
	// try completes the rotation.
	e.Gcloud("container", "clusters", "update", "lazy", "--zone", zone, "--remove-maintenance-exclusion", "freeze")
	e.Eventually(120*time.Second, func() error {
		if pool := strings.TrimSpace(e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_NODES AND status=DONE", "--format", "value(name)")); pool == "" {
			return errors.New("the pool is not recreated yet")
		}
		return nil
	})
	advance("1h")
	e.Eventually(60*time.Second, func() error {
		if _, err := e.Run("kubectl", "get", "--raw", "/readyz", "--server", "https://"+oldIP); err == nil {
			return errors.New("the old IP still answers")
		}
		return nil
	})
	if _, err := e.Run("kubectl", "get", "nodes"); err != nil {
		t.Fatalf("the new IP after the automatic completion: %v", err)
	}
}
