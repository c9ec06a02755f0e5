package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// flowEntry is what the tests read of a VPC flow log entry.
type flowEntry struct {
	JSONPayload struct {
		Connection struct {
			SrcIP    string `json:"src_ip"`
			SrcPort  int    `json:"src_port"`
			DestIP   string `json:"dest_ip"`
			DestPort int    `json:"dest_port"`
			Protocol int    `json:"protocol"`
		} `json:"connection"`
		BytesSent      string     `json:"bytes_sent"`
		Reporter       string     `json:"reporter"`
		SrcGKEDetails  gkeDetails `json:"src_gke_details"`
		DestGKEDetails gkeDetails `json:"dest_gke_details"`
	} `json:"jsonPayload"`
}

type gkeDetails struct {
	Cluster struct {
		Name string `json:"cluster_name"`
	} `json:"cluster"`
	Pod struct {
		Name      string `json:"pod_name"`
		Namespace string `json:"pod_namespace"`
	} `json:"pod"`
}

// flowEntries reads the flow log entries from src to dest, as seeds/003
// reads them.
func flowEntries(t *testing.T, e *harness.Engine, src, dest string) []flowEntry {
	t.Helper()
	filter := fmt.Sprintf(`logName="projects/%s/logs/compute.googleapis.com%%2Fvpc_flows" AND jsonPayload.connection.src_ip="%s" AND jsonPayload.connection.dest_ip="%s"`, e.Project, src, dest)
	var entries []flowEntry
	if out := e.Gcloud("logging", "read", filter, "--format=json"); json.Unmarshal([]byte(out), &entries) != nil {
		t.Fatalf("gcloud logging read: %s", out)
	}
	return entries
}

// TestIntraNodeVisibility is seeds/003's exercise as written, with the
// real gcloud and kubectl: two pods of a one-node cluster with intra-node
// visibility reach each other through the VPC network, where flow logs
// see them and a deny rule stops them; with it off, their traffic stays
// on the node, out of the rule's and the flow logs' sight.
func TestIntraNodeVisibility(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	// As `gcloud init` leaves it: the document's cleanup names no zone or
	// region.
	e.Gcloud("config", "set", "compute/zone", "us-central1-a")
	e.Gcloud("config", "set", "compute/region", "us-central1")
	e.Gcloud("compute", "networks", "subnets", "update", "default", "--region=us-central1", "--enable-flow-logs")
	if out := e.Gcloud("compute", "networks", "subnets", "describe", "default", "--region=us-central1"); !strings.Contains(out, "enableFlowLogs: true") {
		t.Fatalf("subnets describe default:\n%s", out)
	}
	e.Gcloud("container", "clusters", "create", "flow-log-test", "--zone=us-central1-a", "--num-nodes=1", "--enable-intra-node-visibility")
	e.Gcloud("container", "clusters", "get-credentials", "flow-log-test", "--zone=us-central1-a")
	visible := func() string {
		return strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "flow-log-test", "--zone=us-central1-a", "--format=value(networkConfig.enableIntraNodeVisibility)"))
	}
	if v := visible(); v != "True" {
		t.Errorf("describe says enableIntraNodeVisibility %q", v)
	}
	if out := e.Kubectl("get", "daemonset", "netd", "-n", "kube-system", "-o", "jsonpath={.status.numberReady}/{.status.desiredNumberScheduled}"); out != "1/1" {
		t.Errorf("netd ready on %s nodes", out)
	}

	for _, f := range []string{"pod-1.yaml", "pod-2.yaml"} {
		e.Kubectl("apply", "-f", filepath.Join(harness.RepoRoot(), "examples", f))
	}
	e.Kubectl("wait", "--for=condition=Ready", "pod/pod-1", "pod/pod-2", "--timeout=60s")
	t.Logf("kubectl get pod pod-1 pod-2 --output wide\n%s", e.Kubectl("get", "pod", "pod-1", "pod-2", "--output", "wide"))
	p1, p2 := getPod(t, e, "pod-1"), getPod(t, e, "pod-2")
	if p1.Spec.NodeName != p2.Spec.NodeName {
		t.Fatalf("the pods are on %s and %s", p1.Spec.NodeName, p2.Spec.NodeName)
	}
	sh := exec.Command("script", "-qc", "kubectl exec -it pod-1 -- sh", "/dev/null")
	sh.Env, sh.Stdin = e.Env(), strings.NewReader("wget -qO- "+p2.Status.PodIP+":8080\nexit\n")
	if out, err := sh.CombinedOutput(); err != nil || !strings.Contains(strings.ReplaceAll(string(out), "\r", ""), "Hello, world!\nVersion: 2.0.0\nHostname: pod-2") {
		t.Fatalf("kubectl exec -it pod-1 -- sh, wget pod-2: %v\n%s", err, out)
	}
	e.Eventually(30*time.Second, func() error {
		entries := flowEntries(t, e, p1.Status.PodIP, p2.Status.PodIP)
		if len(entries) == 0 {
			return fmt.Errorf("no flow entry from pod-1 to pod-2 yet")
		}
		c := entries[0].JSONPayload
		if c.Connection.DestPort != 8080 || c.Connection.Protocol != 6 || c.Connection.SrcPort == 0 || c.BytesSent == "" || c.BytesSent == "0" ||
			c.SrcGKEDetails.Pod.Name != "pod-1" || c.DestGKEDetails.Pod.Name != "pod-2" || c.SrcGKEDetails.Cluster.Name != "flow-log-test" {
			return fmt.Errorf("the flow entry: %+v", c)
		}
		return nil
	})

	// The network's firewall sees the pods' traffic: a deny rule from
	// pod-1 stops it reaching pod-2 on their own node.
	reach := func() error {
		out, err := e.Run("kubectl", "exec", "pod-1", "--", "timeout", "3", "wget", "-qO-", p2.Status.PodIP+":8080")
		if err != nil || !strings.Contains(out, "Hostname: pod-2") {
			return fmt.Errorf("pod-1 does not reach pod-2: %v %s", err, out)
		}
		return nil
	}
	e.Gcloud("compute", "firewall-rules", "create", "deny-pod-1", "--network", "default", "--action", "DENY",
		"--rules", "tcp:8080", "--source-ranges", p1.Status.PodIP+"/32", "--priority", "100", "--enable-logging")
	defer e.Gcloud("compute", "firewall-rules", "delete", "deny-pod-1", "--quiet")
	e.Eventually(10*time.Second, func() error {
		if reach() == nil {
			return fmt.Errorf("pod-1 still reaches pod-2 through the deny rule")
		}
		return nil
	})
	// The rule logs what it denied.
	denied := fmt.Sprintf(`logName="projects/%s/logs/compute.googleapis.com%%2Ffirewall" AND jsonPayload.disposition="DENIED" AND jsonPayload.connection.src_ip="%s" AND jsonPayload.connection.dest_ip="%s"`,
		e.Project, p1.Status.PodIP, p2.Status.PodIP)
	e.Eventually(15*time.Second, func() error {
		out := e.Gcloud("logging", "read", denied, "--format=value(jsonPayload.rule_details.reference,jsonPayload.connection.dest_port)")
		if !strings.Contains(out, "network:default/firewall:deny-pod-1\t8080") {
			return fmt.Errorf("no firewall log entry of the denied connection yet: %q", out)
		}
		return nil
	})

	// Off: the update restarts the control plane and stops netd; the
	// pods' traffic stays on the node, where the rule does not apply and
	// flow logs see nothing.
	e.Gcloud("container", "clusters", "update", "flow-log-test", "--no-enable-intra-node-visibility")
	// Off is left out, as GKE leaves it.
	if v := visible(); v != "" {
		t.Errorf("after the update, describe says enableIntraNodeVisibility %q", v)
	}
	if out, err := e.Run("kubectl", "get", "daemonset", "netd", "-n", "kube-system"); err == nil {
		t.Errorf("netd is still there:\n%s", out)
	}
	if err := reach(); err != nil {
		t.Errorf("with intra-node visibility off, the deny rule still applies on the node: %v", err)
	}
	before := len(flowEntries(t, e, p1.Status.PodIP, p2.Status.PodIP))
	// Two aggregation intervals (5 s) for what the engine would log.
	time.Sleep(11 * time.Second)
	if after := len(flowEntries(t, e, p1.Status.PodIP, p2.Status.PodIP)); after != before {
		t.Errorf("with intra-node visibility off, flow logs saw pod-1 to pod-2: %d entries, then %d", before, after)
	}

	e.Gcloud("container", "clusters", "delete", "-q", "flow-log-test")
	e.Gcloud("compute", "networks", "subnets", "update", "default", "--no-enable-flow-logs")
	if out := e.Gcloud("compute", "networks", "subnets", "describe", "default", "--region=us-central1"); strings.Contains(out, "enableFlowLogs: true") {
		t.Errorf("flow logs still on after the cleanup:\n%s", out)
	}
	if left := e.Leftovers(); len(left) > 0 {
		t.Errorf("after the cluster's deletion: %s", strings.Join(left, ", "))
	}
}
