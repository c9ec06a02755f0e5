package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestOneOperationAtATime: while a cluster's operation runs, a second
// create is 409 ALREADY_EXISTS and a delete is 400 FAILED_PRECONDITION with
// reason CLUSTER_ALREADY_HAS_OPERATION; nothing changes.
func TestOneOperationAtATime(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	tok := e.Token()
	e.Gcloud("container", "clusters", "create", "busy", "--zone", zone, "--num-nodes", "1", "--async")

	code, body := e.API("POST", clustersPath(e, zone), tok, map[string]any{"cluster": map[string]any{"name": "busy", "nodePools": []any{pool("p", 1)}}})
	if status, _, _, _ := errorOf(t, body); code != 409 || status != "ALREADY_EXISTS" {
		t.Fatalf("second create: HTTP %d %v", code, body)
	}
	code, body = e.API("DELETE", clustersPath(e, zone)+"/busy", tok, nil)
	status, msg, _, reason := errorOf(t, body)
	if code != 400 || status != "FAILED_PRECONDITION" || reason != "CLUSTER_ALREADY_HAS_OPERATION" || !strings.Contains(msg, "Cluster is running incompatible operation") {
		t.Fatalf("delete during create: HTTP %d %v", code, body)
	}
	out, err := e.Run("gcloud", "container", "node-pools", "create", "more", "--cluster", "busy", "--zone", zone, "--num-nodes", "1")
	if err == nil || !strings.Contains(out, "incompatible operation") {
		t.Fatalf("node pool create during create: err=%v\n%s", err, out)
	}

	op := strings.TrimSpace(e.Gcloud("container", "operations", "list", "--filter", "operationType=CREATE_CLUSTER", "--format", "value(name)"))
	e.Gcloud("container", "operations", "wait", op, "--zone", zone)
	if st := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "busy", "--zone", zone, "--format", "value(status)")); st != "RUNNING" {
		t.Fatalf("cluster is %s after create", st)
	}
	if pools := e.Gcloud("container", "node-pools", "list", "--cluster", "busy", "--zone", zone); strings.Contains(pools, "more") {
		t.Fatalf("refused node pool exists:\n%s", pools)
	}
	// Labels go through the fingerprinted setResourceLabels.
	e.Gcloud("container", "clusters", "update", "busy", "--zone", zone, "--update-labels", "team=platform")
	if labels := e.Gcloud("container", "clusters", "describe", "busy", "--zone", zone, "--format", "value(resourceLabels)"); !strings.Contains(labels, "team=platform") || !strings.Contains(labels, "kubeyard-etcd-topology=stacked") {
		t.Fatalf("labels after update: %s", labels)
	}
}

// TestEngineCrashAndRestart: SIGKILL the engine; its control planes keep
// running, the next engine adopts them (same processes), every cluster is
// there and serving, and an operation cut off midway finishes.
func TestEngineCrashAndRestart(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "2")
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)
	before := e.ProcessPIDs()
	if before["loadbalancer@engine"] == 0 {
		t.Fatalf("no load balancer process among %v", before)
	}

	e.Kill()
	for name, pid := range before {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("%s died with the engine", name)
		}
	}
	e.Restart()
	e.Eventually(60*time.Second, func() error {
		_, err := e.Run("kubectl", "get", "nodes")
		return err
	})
	after := e.ProcessPIDs()
	for name, pid := range before {
		if after[name] != pid {
			t.Errorf("%s: pid %d before the crash, %d after: not adopted", name, pid, after[name])
		}
	}
	e.Eventually(90*time.Second, func() error {
		if n := readyNodes(t, e); len(n) != 2 {
			return errorf("want 2 Ready nodes, got %v", n)
		}
		return nil
	})

	// An operation cut off by a crash runs on in the next engine.
	e.Gcloud("container", "node-pools", "create", "late", "--cluster", "demo", "--zone", zone, "--num-nodes", "1", "--async")
	e.Kill()
	e.Restart()
	op := strings.TrimSpace(e.Gcloud("container", "operations", "list", "--filter", "operationType=CREATE_NODE_POOL", "--format", "value(name)"))
	e.Gcloud("container", "operations", "wait", op, "--zone", zone)
	if desc := e.Gcloud("container", "operations", "describe", op, "--zone", zone, "--format", "value(status,error)"); !strings.HasPrefix(strings.TrimSpace(desc), "DONE") || strings.Contains(desc, "message") {
		t.Fatalf("operation after restart: %s", desc)
	}
	if n := readyNodes(t, e); len(n) != 3 {
		t.Fatalf("want 3 Ready nodes after the resumed operation, got %v", n)
	}
}

// TestSignalStopsEverything: SIGINT stops the engine cleanly, and with it
// every control-plane process.
func TestSignalStopsEverything(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "1")
	pids := e.ProcessPIDs()
	if err := e.Stop(syscall.SIGINT); err != nil {
		t.Fatalf("engine exit after SIGINT: %v\n%s", err, e.Log())
	}
	for name, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still runs after the engine stopped", name, pid)
		}
	}
	// Started again, it brings the cluster back.
	e.Restart()
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)
	e.Eventually(90*time.Second, func() error {
		if _, err := e.Run("kubectl", "get", "nodes"); err != nil {
			return err
		}
		if n := readyNodes(t, e); len(n) != 1 {
			return errorf("want 1 Ready node, got %v", n)
		}
		return nil
	})
}

// TestExternalEtcd: with --etcd-endpoints the engine keeps its state in an
// external etcd: a new engine with an empty data dir for state sees the
// clusters.
func TestExternalEtcd(t *testing.T) {
	client := startEtcd(t)
	e := harness.Start(t, harness.Options{ExtraArgs: []string{"--etcd-endpoints", client}})
	e.Gcloud("container", "clusters", "create", "shared", "--zone", zone, "--num-nodes", "1")
	if err := e.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.DataDir, "state")); err == nil {
		t.Fatal("the engine wrote an embedded etcd despite --etcd-endpoints")
	}
	e.Restart()
	if list := e.Gcloud("container", "clusters", "list"); !strings.Contains(list, "shared") {
		t.Fatalf("cluster not found in external etcd:\n%s", list)
	}
}

// TestOneEnginePerStore: a second engine on the etcd (and key prefix) an
// engine works on fails at start, naming that engine; with a prefix of
// its own it runs beside it. An engine that crashed is replaced at once
// by a new one on this machine, and one that stopped cleanly frees the
// store for another.
func TestOneEnginePerStore(t *testing.T) {
	client := startEtcd(t)
	first := harness.Start(t, harness.Options{ExtraArgs: []string{"--etcd-endpoints", client}})
	second := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, harness.Binary(t), "serve", "--data-dir", t.TempDir(), "--addr", harness.FreeAddr(t),
			"--endpoint-pool", "127.99.0.0/16", "--host-pool", "127.98.0.0/16", "--etcd-endpoints", client).CombinedOutput()
		return string(out), err
	}
	out, err := second()
	if err == nil || !strings.Contains(out, "held by the engine at "+first.Addr) || !strings.Contains(out, "--etcd-prefix") {
		t.Fatalf("a second engine on the same store: %v\n%s", err, out)
	}
	apart := harness.Start(t, harness.Options{ExtraArgs: []string{"--etcd-endpoints", client, "--etcd-prefix", "/kubeyard-apart/"}})
	first.Gcloud("container", "clusters", "list")
	apart.Gcloud("container", "clusters", "list")

	first.Kill()
	first.Restart() // takes over at once: the crashed engine's process is gone
	if err := first.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	again := harness.Start(t, harness.Options{ExtraArgs: []string{"--etcd-endpoints", client}})
	again.Gcloud("container", "clusters", "list")
}
