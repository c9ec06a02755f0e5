package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// pod is what the tests read of a pod.
type pod struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase             string `json:"phase"`
		PodIP             string `json:"podIP"`
		ContainerStatuses []struct {
			Name         string `json:"name"`
			ContainerID  string `json:"containerID"`
			RestartCount int    `json:"restartCount"`
			Ready        bool   `json:"ready"`
			State        struct {
				Waiting *struct{ Reason, Message string } `json:"waiting"`
				Running *struct {
					StartedAt string `json:"startedAt"`
				} `json:"running"`
			} `json:"state"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func getPod(t *testing.T, e *harness.Engine, name string) pod {
	t.Helper()
	var p pod
	if err := json.Unmarshal([]byte(e.Kubectl("get", "pod", name, "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func podsOf(t *testing.T, e *harness.Engine, selector string) []pod {
	t.Helper()
	var list struct{ Items []pod }
	if err := json.Unmarshal([]byte(e.Kubectl("get", "pods", "-l", selector, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// containerPIDs are the processes of a pod's container, from its cgroup
// on the node.
func containerPIDs(t *testing.T, e *harness.Engine, p pod, container int) []int {
	t.Helper()
	id := strings.TrimPrefix(p.Status.ContainerStatuses[container].ContainerID, "kubeyard://")
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", e.Prefix()+"-"+p.Spec.NodeName, "pod"+p.Metadata.UID, id, "cgroup.procs"))
	if err != nil {
		t.Fatalf("the cgroup of %s's container: %v", p.Metadata.Name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	return pids
}

// podNS is a pod's network namespace on its node.
func podNS(e *harness.Engine, p pod) string {
	return e.Prefix() + "-" + p.Spec.NodeName + "-" + p.Metadata.UID
}

const hello1 = "Hello, world!\nVersion: 1.0.0\nHostname: pod-1\n"

// TestRealPods is issue 13's flow as a user runs it, with the real gcloud
// and kubectl: pods are real containers, reached through the kubelet
// API, on a pod network that spans the nodes; they outlive an engine
// crash, and leave nothing behind when they go.
func TestRealPods(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "2")
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)

	e.Kubectl("apply", "-f", filepath.Join(harness.RepoRoot(), "examples", "pod-1.yaml"))
	e.Kubectl("wait", "--for=condition=Ready", "pod/pod-1", "--timeout=60s")
	wide := e.Kubectl("get", "pod", "pod-1", "-o", "wide")
	p1 := getPod(t, e, "pod-1")
	cidr, err := netip.ParsePrefix(readyNodes(t, e)[p1.Spec.NodeName])
	if ip, perr := netip.ParseAddr(p1.Status.PodIP); err != nil || perr != nil || !cidr.Contains(ip) || !strings.Contains(wide, "1/1") || !strings.Contains(wide, "Running") {
		t.Fatalf("pod-1 at %s on %s (pod range %v):\n%s", p1.Status.PodIP, p1.Spec.NodeName, cidr, wide)
	}
	if logs := e.Kubectl("logs", "pod-1"); !strings.Contains(logs, "Server listening on port 8080") {
		t.Errorf("kubectl logs pod-1:\n%s", logs)
	}
	// An interactive shell, on a terminal (script gives kubectl one).
	sh := exec.Command("script", "-qc", "kubectl exec -it pod-1 -- sh", "/dev/null")
	sh.Env, sh.Stdin = e.Env(), strings.NewReader("echo in $(hostname) on a $(tty)\nexit\n")
	if out, err := sh.CombinedOutput(); err != nil || !strings.Contains(string(out), "in pod-1 on a /dev/pts/0") {
		t.Errorf("kubectl exec -it pod-1 -- sh: %v\n%s", err, out)
	}
	start := time.Now()
	if out := e.Kubectl("exec", "pod-1", "--", "wget", "-qO-", "localhost:8080"); out != hello1 {
		t.Errorf("kubectl exec pod-1 -- wget: %q", out)
	}
	t.Logf("kubectl exec (a process of its own) took %s", time.Since(start))
	// The service account's projected volume: a bound token the cluster
	// takes, its CA, its namespace.
	if out := e.Kubectl("exec", "pod-1", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"); out != "default" {
		t.Errorf("the service account volume's namespace: %q", out)
	}
	token := e.Kubectl("exec", "pod-1", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
	if who, err := e.Run("kubectl", "auth", "whoami", "--token", token, "-o", "jsonpath={.status.userInfo.username}"); err != nil || who != "system:serviceaccount:default:default" {
		t.Errorf("the pod's token is %q to the cluster: %v", who, err)
	}
	port := harness.FreePort(t)
	var pfLog bytes.Buffer
	pf := e.Start(&pfLog, "kubectl", "port-forward", "pod/pod-1", port+":8080")
	e.Eventually(30*time.Second, func() error {
		// curl -s localhost:PORT, as a Go client.
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://localhost:" + port)
		if err != nil {
			return fmt.Errorf("through port-forward: %v (%s)", err, pfLog.String())
		}
		defer resp.Body.Close()
		if body, _ := io.ReadAll(resp.Body); string(body) != hello1 {
			return fmt.Errorf("through port-forward: %q", body)
		}
		return nil
	})
	_ = pf.Signal(syscall.SIGTERM)
	e.Kubectl("cp", "pod-1:/etc/hostname", filepath.Join(e.Dir, "hostname"))
	if got, err := os.ReadFile(filepath.Join(e.Dir, "hostname")); err != nil || string(got) != "pod-1\n" {
		t.Errorf("kubectl cp pod-1:/etc/hostname: %q %v", got, err)
	}

	e.Kubectl("create", "deployment", "web", "--image=us-docker.pkg.dev/google-samples/containers/gke/hello-app:2.0", "--replicas=3")
	e.Kubectl("rollout", "status", "deployment/web", "--timeout=90s")
	web := podsOf(t, e, "app=web")
	var other pod
	for _, w := range web {
		if w.Spec.NodeName != p1.Spec.NodeName {
			other = w
		}
	}
	if other.Metadata.Name == "" {
		t.Fatalf("no web pod on the node pod-1 is not on: %+v", web)
	}
	if out := e.Kubectl("exec", "pod-1", "--", "wget", "-qO-", other.Status.PodIP+":8080"); !strings.Contains(out, "Version: 2.0.0\nHostname: "+other.Metadata.Name) {
		t.Errorf("pod-1 to %s on the other node: %q", other.Metadata.Name, out)
	}

	// The VPC's firewall is on every packet between nodes: a deny rule
	// from pod-1 to port 8080 stops it reaching the other node's pod, and
	// its deletion lets it through again.
	t.Run("firewall rules between nodes", func(t *testing.T) {
		reach := func() error {
			out, err := e.Run("kubectl", "exec", "pod-1", "--", "timeout", "3", "wget", "-qO-", other.Status.PodIP+":8080")
			if err != nil || !strings.Contains(out, "Hostname: "+other.Metadata.Name) {
				return fmt.Errorf("pod-1 does not reach %s: %v %s", other.Metadata.Name, err, out)
			}
			return nil
		}
		if err := reach(); err != nil {
			t.Fatal(err)
		}
		e.Gcloud("compute", "firewall-rules", "create", "deny-pod-1", "--network", "default", "--action", "DENY",
			"--rules", "tcp:8080", "--source-ranges", p1.Status.PodIP+"/32", "--priority", "100")
		e.Eventually(10*time.Second, func() error {
			if reach() == nil {
				return fmt.Errorf("pod-1 still reaches %s through the deny rule", other.Metadata.Name)
			}
			return nil
		})
		e.Gcloud("compute", "firewall-rules", "delete", "deny-pod-1", "--quiet")
		e.Eventually(10*time.Second, reach)
	})

	// With flow logs on the subnetwork, the connection is read back with
	// gcloud logging read, as seeds/003 reads it.
	t.Run("flow logs", func(t *testing.T) {
		e.Gcloud("compute", "networks", "subnets", "update", "default", "--region=us-central1", "--enable-flow-logs")
		defer e.Gcloud("compute", "networks", "subnets", "update", "default", "--region=us-central1", "--no-enable-flow-logs")
		e.Kubectl("exec", "pod-1", "--", "wget", "-qO-", other.Status.PodIP+":8080")
		e.Eventually(30*time.Second, func() error {
			entries := flowEntries(t, e, p1.Status.PodIP, other.Status.PodIP)
			if len(entries) == 0 {
				return fmt.Errorf("no flow entry yet")
			}
			c := entries[0].JSONPayload
			if c.Connection.DestPort != 8080 || c.Connection.Protocol != 6 || c.BytesSent == "" || c.BytesSent == "0" {
				return fmt.Errorf("the flow entry: %+v", c)
			}
			return nil
		})
	})

	t.Run("kubelet API refuses strangers", func(t *testing.T) {
		var node struct {
			Status struct {
				Addresses []struct{ Type, Address string }
			}
		}
		if err := json.Unmarshal([]byte(e.Kubectl("get", "node", p1.Spec.NodeName, "-o", "json")), &node); err != nil {
			t.Fatal(err)
		}
		addr := ""
		for _, a := range node.Status.Addresses {
			if a.Type == "Hostname" {
				addr = a.Address
			}
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		get := func(token string) int {
			req, _ := http.NewRequest(http.MethodGet, "https://"+addr+":10250/pods", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := get(""); code != http.StatusUnauthorized {
			t.Errorf("anonymous: HTTP %d, want 401", code)
		}
		token := strings.TrimSpace(e.Kubectl("create", "token", "default"))
		if code := get(token); code != http.StatusForbidden {
			t.Errorf("a service account with no nodes/proxy: HTTP %d, want 403", code)
		}
		if code := get(e.Token()); code != http.StatusOK {
			t.Errorf("the cluster's admin: HTTP %d, want 200", code)
		}
	})

	t.Run("kubectl run -it attaches to the container's terminal", func(t *testing.T) {
		run := exec.Command("script", "-qc", "kubectl run -it shell --image=busybox --restart=Never -- sh", "/dev/null")
		stdin, typing := io.Pipe()
		run.Env, run.Stdin = e.Env(), stdin
		go func() {
			time.Sleep(3 * time.Second) // kubectl attaches once the pod runs
			io.WriteString(typing, "echo hi from $(hostname); exit\n")
			time.Sleep(3 * time.Second) // script ends with its input
			typing.Close()
		}()
		out, err := run.CombinedOutput()
		if !strings.Contains(string(out), "hi from shell") {
			t.Errorf("kubectl run -it: %v\n%s", err, out)
		}
		e.Eventually(30*time.Second, func() error {
			if p := getPod(t, e, "shell"); p.Status.Phase != "Succeeded" {
				return fmt.Errorf("shell is %s", p.Status.Phase)
			}
			return nil
		})
		e.Kubectl("delete", "pod", "shell")
	})

	t.Run("an image the store lacks", func(t *testing.T) {
		e.Kubectl("run", "nginx", "--image=nginx:1.27")
		e.Eventually(60*time.Second, func() error {
			p := getPod(t, e, "nginx")
			if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil ||
				p.Status.ContainerStatuses[0].State.Waiting.Reason != "ImagePullBackOff" {
				return fmt.Errorf("nginx: %+v", p.Status)
			}
			if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "nginx:1.27") || !strings.Contains(msg, "kubeyard images load") {
				t.Errorf("ImagePullBackOff's message: %q", msg)
			}
			return nil
		})
		e.Kubectl("delete", "pod", "nginx", "--wait=true")
	})

	t.Run("a container killed by hand is restarted", func(t *testing.T) {
		for _, pid := range containerPIDs(t, e, getPod(t, e, "pod-1"), 0) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		e.Eventually(60*time.Second, func() error {
			p := getPod(t, e, "pod-1")
			if s := p.Status.ContainerStatuses[0]; s.RestartCount != 1 || !s.Ready {
				return fmt.Errorf("pod-1's container: %+v", s)
			}
			return nil
		})
		if out := e.Kubectl("logs", "pod-1", "--previous"); !strings.Contains(out, "Server listening on port 8080") || !strings.Contains(out, "Serving request: /") {
			t.Errorf("kubectl logs --previous (the killed attempt's, with the requests it served):\n%s", out)
		}
		if out := e.Kubectl("logs", "pod-1", "--tail=1"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "Server listening") {
			t.Errorf("kubectl logs --tail=1 of the new attempt: %q", out)
		}
	})

	t.Run("containers outlive an engine crash", func(t *testing.T) {
		before := map[string][]int{}
		ids := map[string]string{}
		for _, w := range web {
			w = getPod(t, e, w.Metadata.Name)
			before[w.Metadata.Name] = containerPIDs(t, e, w, 0)
			ids[w.Metadata.Name] = w.Status.ContainerStatuses[0].ContainerID
		}
		// A deny rule from pod-1, enforced before the crash.
		e.Gcloud("compute", "firewall-rules", "create", "deny-pod-1-crash", "--network", "default", "--action", "DENY",
			"--rules", "tcp:8080", "--source-ranges", p1.Status.PodIP+"/32", "--priority", "100")
		defer e.Gcloud("compute", "firewall-rules", "delete", "deny-pod-1-crash", "--quiet")
		wget := func(ns string) error {
			out, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "timeout", "3", "busybox", "wget", "-qO-", other.Status.PodIP+":8080").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Hostname: "+other.Metadata.Name) {
				return fmt.Errorf("%v %q", err, out)
			}
			return nil
		}
		e.Eventually(10*time.Second, func() error {
			if wget(podNS(e, p1)) == nil {
				return fmt.Errorf("pod-1 still reaches %s through the deny rule", other.Metadata.Name)
			}
			return nil
		})
		e.Kill()
		// While the engine is down, the network forwards and filters as it
		// did: pod-1's node reaches the web pod on the other node, pod-1
		// itself does not.
		if err := wget(e.Prefix() + "-" + p1.Spec.NodeName); err != nil {
			t.Errorf("a request from pod-1's node to the other node's pod with the engine down: %v", err)
		}
		if wget(podNS(e, p1)) == nil {
			t.Error("with the engine down, the deny rule no longer applies")
		}
		e.Restart()
		e.Eventually(60*time.Second, func() error {
			_, err := e.Run("kubectl", "get", "pods")
			return err
		})
		for _, w := range web {
			got := getPod(t, e, w.Metadata.Name)
			s := got.Status.ContainerStatuses[0]
			if s.ContainerID != ids[w.Metadata.Name] || s.RestartCount != 0 || fmt.Sprint(containerPIDs(t, e, got, 0)) != fmt.Sprint(before[w.Metadata.Name]) {
				t.Errorf("%s after the restart: %+v, processes %v (before: %s, %v)", w.Metadata.Name, s, containerPIDs(t, e, got, 0), ids[w.Metadata.Name], before[w.Metadata.Name])
			}
		}
	})

	t.Run("a simulated node pool", func(t *testing.T) {
		e.Gcloud("container", "node-pools", "create", "sim", "--cluster", "demo", "--zone", zone, "--num-nodes", "1", "--node-labels", "kubeyard.dev/simulated=true")
		nodes := e.Kubectl("get", "nodes", "-l", "cloud.google.com/gke-nodepool=sim", "-o", "jsonpath={.items[*].status.nodeInfo.containerRuntimeVersion}")
		if nodes != "kubeyard://simulated" {
			t.Errorf("the sim pool's node runs %q", nodes)
		}
		e.Kubectl("run", "ghost", "--image=nginx:1.27", "--overrides", `{"spec":{"nodeSelector":{"cloud.google.com/gke-nodepool":"sim"}}}`)
		e.Kubectl("wait", "--for=condition=Ready", "pod/ghost", "--timeout=60s") // no image needed: nothing runs
		if left := e.Leftovers(); slices.ContainsFunc(left, func(l string) bool { return strings.Contains(l, "-sim-") }) {
			t.Errorf("a simulated node has a dataplane: %v", left)
		}
		e.Kubectl("delete", "pod", "ghost")

		// More simulated nodes share the first one's watch and client.
		watches := podWatches(t, e)
		e.Gcloud("container", "clusters", "resize", "demo", "--zone", zone, "--node-pool", "sim", "--num-nodes", "5", "--quiet")
		if more := podWatches(t, e) - watches; more > 1 { // 1: another client's watch may be renewing
			t.Errorf("4 simulated nodes more made %d pod watches more", more)
		}
		manifest := filepath.Join(t.TempDir(), "ghosts.yaml")
		if err := os.WriteFile(manifest, []byte(harness.SimulatedDeployment("ghosts", 10)), 0o644); err != nil {
			t.Fatal(err)
		}
		e.Kubectl("apply", "-f", manifest)
		e.Kubectl("rollout", "status", "deployment/ghosts", "--timeout=60s")
		on := map[string]bool{}
		for _, n := range strings.Fields(e.Kubectl("get", "pods", "-l", "app=ghosts", "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].spec.nodeName}")) {
			on[n] = true
		}
		if len(on) < 2 {
			t.Errorf("10 pods Running on %d simulated nodes of 5", len(on))
		}
		e.Kubectl("delete", "deployment", "ghosts")

		// Fewer simulated nodes: removed through the client they share,
		// no connection of their own each.
		endpoint := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "demo", "--zone", zone, "--format", "value(endpoint)")) + ":443"
		conns := e.Connections(endpoint)
		e.Gcloud("container", "clusters", "resize", "demo", "--zone", zone, "--node-pool", "sim", "--num-nodes", "1", "--quiet")
		if more := e.Connections(endpoint) - conns; more > 1 {
			t.Errorf("removing 4 simulated nodes left %d connections more to the cluster's endpoint", more)
		}
		e.Gcloud("container", "node-pools", "delete", "sim", "--cluster", "demo", "--zone", zone, "--quiet")
	})

	ns := podNS(e, p1)
	e.Kubectl("delete", "pod", "pod-1")
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Errorf("pod-1's network namespace %s is left", ns)
	}
	if mounts, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(mounts), p1.Metadata.UID) {
		t.Errorf("pod-1's mounts are left")
	}
	if cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + e.Prefix() + "-*/pod" + p1.Metadata.UID); len(cgroups) > 0 {
		t.Errorf("pod-1's cgroups are left: %v", cgroups)
	}
	if out, err := e.Kubeyard("images", "list"); err != nil || !strings.Contains(out, "hello-app") {
		t.Errorf("kubeyard images list: %v\n%s", err, out)
	}
	e.Gcloud("container", "clusters", "delete", "demo", "--zone", zone, "--quiet")
	if left := e.Leftovers(); len(left) > 0 {
		t.Errorf("after the cluster's deletion: %s", strings.Join(left, ", "))
	}
}

// podWatches is how many watches of pods the cluster's kube-apiserver
// serves.
func podWatches(t *testing.T, e *harness.Engine) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(e.Kubectl("get", "--raw", "/metrics"), "\n") {
		if strings.HasPrefix(line, "apiserver_longrunning_requests{") && strings.Contains(line, `resource="pods"`) && strings.Contains(line, `verb="WATCH"`) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			n += int(v)
		}
	}
	return n
}
