package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// kwokVersion is the KWOK that kubeyard is measured against (issue 16).
const kwokVersion = "v0.8.0"

// kwokBinaries builds kwokctl and kwok from the Go module proxy, once per
// machine (kept in the user's cache folder), and returns their folder.
func kwokBinaries(b *testing.B) string {
	b.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(cache, "kubeyard-bench", "kwok-"+kwokVersion)
	if _, err := os.Stat(filepath.Join(dir, "kwok")); err == nil {
		return dir
	}
	cmd := exec.Command("go", "install", "sigs.k8s.io/kwok/cmd/kwokctl@"+kwokVersion, "sigs.k8s.io/kwok/cmd/kwok@"+kwokVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building KWOK %s: %v\n%s", kwokVersion, err, out)
	}
	return dir
}

// kwokCluster is a KWOK cluster of the binary runtime whose control plane
// is kubeyard's own upstream components (the same build), all on
// loopback.
type kwokCluster struct {
	b       *testing.B
	kwokctl string
	work    string
	name    string
}

func newKWOKCluster(b *testing.B, name string) *kwokCluster {
	b.Helper()
	bin := kwokBinaries(b)
	dir := b.TempDir()
	// kwokctl runs a binary with the component's flags: a wrapper hands
	// them to kubeyard's multi-call binary.
	wrappers := filepath.Join(dir, "bin")
	if err := os.MkdirAll(wrappers, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		script := fmt.Sprintf("#!/bin/sh\nexec %s component %s \"$@\"\n", harness.Binary(b), c)
		if err := os.WriteFile(filepath.Join(wrappers, c), []byte(script), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Fatal(err)
	}
	config := fmt.Sprintf(`kind: KwokctlConfiguration
apiVersion: config.kwok.x-k8s.io/v1alpha1
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: v1.37.2
  etcdVersion: 3.7.3
  kubeApiserverBinary: %[1]s/kube-apiserver
  kubeControllerManagerBinary: %[1]s/kube-controller-manager
  kubeSchedulerBinary: %[1]s/kube-scheduler
  etcdBinary: %[1]s/etcd
  kwokControllerBinary: %[2]s/kwok
  kubectlBinary: %[3]s
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  - {key: kube-api-qps, value: "500"}
  - {key: kube-api-burst, value: "1000"}
- name: kube-scheduler
  extraArgs:
  - {key: kube-api-qps, value: "500"}
  - {key: kube-api-burst, value: "1000"}
`, wrappers, bin, kubectl)
	if err := os.WriteFile(filepath.Join(dir, "kwok.yaml"), []byte(config), 0o644); err != nil {
		b.Fatal(err)
	}
	k := &kwokCluster{b: b, kwokctl: filepath.Join(bin, "kwokctl"), work: filepath.Join(dir, "work"), name: name}
	b.Cleanup(func() { _, _ = k.run("delete", "cluster", "--name", name) })
	return k
}

func (k *kwokCluster) run(args ...string) (string, error) {
	cmd := exec.Command(k.kwokctl, append([]string{"--config", filepath.Join(filepath.Dir(k.work), "kwok.yaml")}, args...)...)
	cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+k.work)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (k *kwokCluster) clusterDir() string { return filepath.Join(k.work, "clusters", k.name) }

func (k *kwokCluster) client() *kubernetes.Clientset {
	k.b.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(k.clusterDir(), "kubeconfig.yaml"))
	if err != nil {
		k.b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		k.b.Fatal(err)
	}
	return client
}

// create is `kwokctl create cluster` to /readyz ok.
func (k *kwokCluster) create() time.Duration {
	k.b.Helper()
	start := time.Now()
	if out, err := k.run("create", "cluster", "--name", k.name); err != nil {
		k.b.Fatalf("kwokctl create cluster: %v\n%s", err, out)
	}
	client := k.client()
	if err := harness.Poll(time.Minute, 10*time.Millisecond, func() error {
		_, err := client.RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err
	}); err != nil {
		k.b.Fatal(err)
	}
	return time.Since(start)
}

// pids are the cluster's processes by name, as kwokctl records them.
func (k *kwokCluster) pids() map[string]int {
	files, _ := filepath.Glob(filepath.Join(k.clusterDir(), "pids", "*.pid"))
	pids := map[string]int{}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			pids[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	return pids
}

// kwokPodsRunning creates a Deployment of replicas pods on KWOK's nodes
// and returns the time until all are available.
func kwokPodsRunning(b *testing.B, client *kubernetes.Clientset, replicas int) time.Duration {
	b.Helper()
	labels := map[string]string{"app": "ghosts"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ghosts", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"type": "kwok"},
					Containers:   []corev1.Container{{Name: "c", Image: "nginx:1.27"}},
				},
			},
		},
	}
	return deploymentAvailable(b, client, d, 15*time.Minute)
}

// deploymentAvailable creates the Deployment (in default) and returns the
// time until all its replicas are available.
func deploymentAvailable(b *testing.B, client *kubernetes.Clientset, d *appsv1.Deployment, timeout time.Duration) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	if _, err := client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := harness.Poll(timeout, time.Second, func() error {
		got, err := client.AppsV1().Deployments("default").Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.AvailableReplicas != *d.Spec.Replicas {
			return fmt.Errorf("%d of %d pods available", got.Status.AvailableReplicas, *d.Spec.Replicas)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// nodesReady creates n Nodes that the KWOK controller takes (its
// annotation) and returns the time until all are Ready.
func kwokNodesReady(b *testing.B, client *kubernetes.Clientset, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 20 {
		wg.Go(func() {
			for i := range work {
				node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("kwok-node-%d", i),
					Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
					// The zone, as GKE's nodes (and kubeyard's) have it: the
					// scheduler's default spreading counts pods over it.
					Labels: map[string]string{"type": "kwok", "topology.kubernetes.io/zone": zone}}}
				if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := harness.Poll(5*time.Minute, 100*time.Millisecond, func() error {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
		if err != nil {
			return err
		}
		ready := 0
		for _, node := range nodes.Items {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < n {
			return fmt.Errorf("%d of %d nodes Ready", ready, n)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkAgainstKWOK prints kubeyard beside KWOK (kwokctl, binary
// runtime, its control plane built from the same upstream components:
// kubeyard's own binary behind a wrapper), one after the other in this
// process: create to ready (kubeyard: the REST call to its operation DONE
// with one node Ready; KWOK: `kwokctl create cluster` to /readyz ok,
// with no node), and the idle control plane's PSS, with RSS beside it;
// 1,000 simulated nodes to Ready and 10,000 pods of a Deployment on them
// (KWOK's nodes carry a zone, as kubeyard's and GKE's do, and its
// controller-manager and scheduler kubeyard's client limits). Targets
// (issue 16): create at most KWOK's (ratio 1.0 or less); PSS at most
// 200 MiB.
func BenchmarkAgainstKWOK(b *testing.B) {
	for range b.N {
		k := newKWOKCluster(b, "kybench")
		kwokCreate := k.create()
		time.Sleep(settle)
		kwokMem := measure(values(k.pids()))
		kwokCPU, kwokIdle := sharesLine(cpuShares(k.pids(), idleSpan))
		kwokNodes := kwokNodesReady(b, k.client(), 1000)
		kwokPods := kwokPodsRunning(b, k.client(), 10000)
		if out, err := k.run("delete", "cluster", "--name", k.name); err != nil {
			b.Fatalf("kwokctl delete cluster: %v\n%s", err, out)
		}

		e := harness.Start(b, harness.Options{})
		create := createCluster(b, e, zone, "kybench", 1)
		time.Sleep(settle)
		cp := measure(clusterPIDs(e, ""))
		engine := measure([]int{e.PID()})
		cpu, idle := sharesLine(cpuShares(idlePIDs(e), idleSpan))

		fmt.Printf("create to ready:    kubeyard %.2f s, KWOK %.2f s (kubeyard/KWOK %.2fx; target 1.0 or less)\n",
			create.Seconds(), kwokCreate.Seconds(), create.Seconds()/kwokCreate.Seconds())
		fmt.Printf("idle control plane: kubeyard PSS %.0f MiB (RSS %.0f), engine beside it PSS %.0f MiB; KWOK PSS %.0f MiB (RSS %.0f) (PSS kubeyard/KWOK %.2fx; target 200 MiB: %.2fx)\n",
			cp.pss, cp.rss, engine.pss, kwokMem.pss, kwokMem.rss, cp.pss/kwokMem.pss, cp.pss/200)
		fmt.Printf("idle CPU, %s on, of one core: kubeyard %s; KWOK %s (kubeyard/KWOK %.2fx; target 1%%: %.2fx)\n",
			idleSpan, cpu, kwokCPU, idle/kwokIdle, idle/1)
		sharedFirst, sharedCreate, sharedMem := sharedEtcdClusters(b, e, "kybench-shared")
		fmt.Printf("shared etcd topology: create to ready kubeyard %.2f s with the shared etcd running (kubeyard/KWOK %.2fx), %.2f s for the first, which starts it; a control plane with the whole shared etcd (two tenants) PSS %.0f MiB (RSS %.0f)\n",
			sharedCreate.Seconds(), sharedCreate.Seconds()/kwokCreate.Seconds(), sharedFirst.Seconds(), sharedMem.pss, sharedMem.rss)
		scale := simulatedScale(b, e, "kybench", 1000, 10000, 10)
		printScale(scale, kwokNodes, kwokPods)
		b.ReportMetric(scale.up.Seconds(), "1000-nodes-s")
		b.ReportMetric(create.Seconds()/kwokCreate.Seconds(), "create-vs-kwok-x")
		b.ReportMetric(sharedCreate.Seconds()/kwokCreate.Seconds(), "shared-create-vs-kwok-x")
		b.ReportMetric(cp.pss, "pss-MiB")
		b.ReportMetric(cp.pss/kwokMem.pss, "pss-vs-kwok-x")
		b.ReportMetric(idle, "idle-cpu-%")
	}
}

// sharedEtcdClusters creates two zonal clusters of one node on the shared
// etcd beside the engine's others, one after the other: the first starts
// the shared etcd, the second finds it running, as every later one does.
// It returns their create times and the idle memory of the second's
// control plane with the shared etcd's (all of it: two tenants), then
// deletes them.
func sharedEtcdClusters(b *testing.B, e *harness.Engine, name string) (first, second time.Duration, mem memory) {
	b.Helper()
	var took [2]time.Duration
	var paths [2]string
	for i := range took {
		n := fmt.Sprintf("%s-%d", name, i+1)
		var err error
		if took[i], err = tryCreateCluster(e, zone, n, 1, map[string]string{"kubeyard-etcd-topology": "shared"}); err != nil {
			b.Fatal(err)
		}
		paths[i] = fmt.Sprintf("/v1/projects/%s/locations/%s/clusters/%s", e.Project, zone, n)
	}
	time.Sleep(settle)
	_, c := e.API("GET", paths[1], e.Token(), nil)
	mem = measure(append(clusterPIDs(e, c["id"].(string)), e.ProcessPIDs()["shared-etcd@engine"]))
	for _, path := range paths {
		code, op := e.API("DELETE", path, e.Token(), nil)
		if code != 200 {
			b.Fatalf("delete %s: HTTP %d %v", path, code, op)
		}
		waitOperation(b, e, zone, op["name"].(string))
	}
	return took[0], took[1], mem
}

// idleSpan is how long idle CPU is averaged over (issue 16: a minute).
const idleSpan = time.Minute

// settle is how long a new cluster is left before it counts as idle, on
// either side: the start's burst over, and kubeyard's components back on
// their idle GC pace (pace's 15 s calm).
const settle = 30 * time.Second

// idlePIDs are the processes an idle one-cluster engine runs for it: the
// control plane, the node's kube-proxy and containers (CoreDNS) with their
// shims, the load balancer and the engine itself (its node agent, its
// loops).
func idlePIDs(e *harness.Engine) map[string]int {
	pids := e.ProcessPIDs()
	for name, pid := range e.NodePIDs() {
		pids[name] = pid
	}
	pids["engine"] = e.PID()
	return pids
}
