// End-to-end tests: real kubeyard engines driven by the real gcloud and
// kubectl, with real control planes. They need the built binary (make e2e).
package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

const zone = "us-central1-a"

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			PodCIDR string `json:"podCIDR"`
		} `json:"spec"`
		Status struct {
			Conditions []struct {
				Type, Status string
			} `json:"conditions"`
		} `json:"status"`
	} `json:"items"`
}

func readyNodes(t *testing.T, e *harness.Engine) map[string]string {
	t.Helper()
	var nodes nodeList
	if err := json.Unmarshal([]byte(e.Kubectl("get", "nodes", "-o", "json")), &nodes); err != nil {
		t.Fatal(err)
	}
	ready := map[string]string{}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ready[n.Metadata.Name] = n.Spec.PodCIDR
			}
		}
	}
	return ready
}

// TestZonalClusterFlow is the README's flow, command for command.
func TestZonalClusterFlow(t *testing.T) {
	e := harness.Start(t, harness.Options{})

	start := time.Now()
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "3")
	t.Logf("clusters create took %v (gcloud included)", time.Since(start))
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)

	kubeconfig, err := os.ReadFile(filepath.Join(e.Dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kubeconfig), "server: https://127.") || !strings.Contains(string(kubeconfig), "gke-gcloud-auth-plugin") {
		t.Fatalf("kubeconfig does not point at the cluster endpoint through the auth plugin:\n%s", kubeconfig)
	}

	nodes := readyNodes(t, e)
	if len(nodes) != 3 {
		t.Fatalf("want 3 Ready nodes, got %v", nodes)
	}
	for name := range nodes {
		if !strings.HasPrefix(name, "gke-demo-default-pool-") {
			t.Errorf("node name %q is not GKE-style", name)
		}
	}
	if who := e.Kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); who != "admin@kubeyard.local" {
		t.Errorf("kubectl authenticates as %q, want the engine's identity", who)
	}

	e.Kubectl("apply", "-f", filepath.Join(harness.RepoRoot(), "examples", "pod-1.yaml"))
	var pod struct {
		Spec   struct{ NodeName string }     `json:"spec"`
		Status struct{ Phase, PodIP string } `json:"status"`
	}
	e.Eventually(60*time.Second, func() error {
		if err := json.Unmarshal([]byte(e.Kubectl("get", "pod", "pod-1", "-o", "json")), &pod); err != nil {
			return err
		}
		if pod.Status.Phase != "Running" {
			return fmt.Errorf("pod-1 is %q", pod.Status.Phase)
		}
		return nil
	})
	_, cidr, err := net.ParseCIDR(readyNodes(t, e)[pod.Spec.NodeName])
	if err != nil || !cidr.Contains(net.ParseIP(pod.Status.PodIP)) {
		t.Fatalf("pod IP %s is not in the pod CIDR of node %s (%v): %v", pod.Status.PodIP, pod.Spec.NodeName, cidr, err)
	}
	if wide := e.Kubectl("get", "pod", "pod-1", "-o", "wide"); !strings.Contains(wide, pod.Status.PodIP) || !strings.Contains(wide, "Running") {
		t.Errorf("kubectl get pod -o wide:\n%s", wide)
	}

	// kube-apiserver reaches kubelets on their loopback address (the
	// VPC address lives in the node's network namespace).
	if out := e.Kubectl("logs", "pod-1", "--request-timeout=10s"); !strings.Contains(out, "Server listening on port 8080") {
		t.Errorf("kubectl logs pod-1:\n%s", out)
	}
	// The cluster accepts the engine's token only.
	if out, err := e.Run("kubectl", "get", "nodes", "--token", "ky.not-the-token"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Errorf("kubectl with a wrong token: %v\n%s", err, out)
	}

	if list := e.Gcloud("container", "clusters", "list"); !strings.Contains(list, "demo") || !strings.Contains(list, "RUNNING") {
		t.Errorf("clusters list:\n%s", list)
	}
	var cluster struct {
		Endpoint   string
		Status     string
		MasterAuth struct{ ClusterCaCertificate string }
	}
	if err := json.Unmarshal([]byte(e.Gcloud("container", "clusters", "describe", "demo", "--zone", zone, "--format", "json")), &cluster); err != nil {
		t.Fatal(err)
	}
	if cluster.Status != "RUNNING" || net.ParseIP(cluster.Endpoint) == nil || !net.ParseIP(cluster.Endpoint).IsLoopback() || cluster.MasterAuth.ClusterCaCertificate == "" {
		t.Fatalf("describe: %+v", cluster)
	}

	e.Gcloud("container", "node-pools", "create", "extra", "--cluster", "demo", "--zone", zone, "--num-nodes", "2")
	if n := readyNodes(t, e); len(n) != 5 {
		t.Fatalf("after node-pools create: want 5 Ready nodes, got %v", n)
	}
	e.Gcloud("container", "clusters", "resize", "demo", "--node-pool", "extra", "--num-nodes", "1", "--zone", zone, "--quiet")
	extra := 0
	for name := range readyNodes(t, e) {
		if strings.HasPrefix(name, "gke-demo-extra-") {
			extra++
		}
	}
	if extra != 1 {
		t.Fatalf("after resize: want 1 node in pool extra, got %d", extra)
	}

	ops := e.Gcloud("container", "operations", "list")
	for _, typ := range []string{"CREATE_CLUSTER", "CREATE_NODE_POOL", "SET_NODE_POOL_SIZE"} {
		if !strings.Contains(ops, typ) {
			t.Errorf("operations list lacks %s:\n%s", typ, ops)
		}
	}

	pids := e.ComponentPIDs()
	if len(pids) != 4 {
		t.Fatalf("want 4 control-plane processes, got %v", pids)
	}
	e.Gcloud("container", "clusters", "delete", "demo", "--zone", zone, "--quiet")
	for name, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still runs after delete", name, pid)
		}
	}
	if dirs, _ := os.ReadDir(filepath.Join(e.DataDir, "clusters")); len(dirs) != 0 {
		t.Errorf("cluster files left after delete: %v", dirs)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(cluster.Endpoint, "443"), time.Second); err == nil {
		conn.Close()
		t.Errorf("endpoint %s still answers after delete", cluster.Endpoint)
	}
	if list := e.Gcloud("container", "clusters", "list"); strings.Contains(list, "demo") {
		t.Errorf("cluster still listed after delete:\n%s", list)
	}
}
