package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// clusterClient is a client of a cluster, as its admin (the engine's
// token, which the cluster's authentication webhook takes).
func clusterClient(b *testing.B, e *harness.Engine, name string) (*kubernetes.Clientset, *rest.Config) {
	b.Helper()
	code, c := e.API("GET", fmt.Sprintf("/v1/projects/%s/locations/%s/clusters/%s", e.Project, zone, name), e.Token(), nil)
	if code != 200 {
		b.Fatalf("get %s: HTTP %d", name, code)
	}
	ca, _ := base64.StdEncoding.DecodeString(c["masterAuth"].(map[string]any)["clusterCaCertificate"].(string))
	cfg := &rest.Config{Host: "https://" + c["endpoint"].(string), BearerToken: e.Token(), TLSClientConfig: rest.TLSClientConfig{CAData: ca}, QPS: 100, Burst: 200}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return client, cfg
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// BenchmarkPodStartup prints how long 30 hello-app pods created at once on
// a 2-node cluster take to be Running and Ready (from each create call to
// the watch seeing it Ready), p50 and p99 (target p99 under 2 s; the
// Kubernetes pod-startup SLO is 5 s p99 with pre-pulled images); the round
// trip of an exec through the API server and the kubelet API (target
// under 300 ms); and what the node agent costs per running pod beyond the
// container's own processes: its shim, and the engine's growth.
func BenchmarkPodStartup(b *testing.B) {
	for range b.N {
		e := harness.Start(b, harness.Options{})
		createCluster(b, e, zone, "pods", 2)
		client, cfg := clusterClient(b, e, "pods")
		ctx := context.Background()
		// The default service account comes a moment after the cluster.
		if err := harness.Poll(time.Minute, 100*time.Millisecond, func() error {
			_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		engineBefore := measure([]int{e.PID()})

		cpuBefore := cpuSeconds(clusterPIDs(e, ""))
		engineCPUBefore := cpuSeconds([]int{e.PID()})

		const n = 30
		w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=startup"})
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		created := map[string]time.Time{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				name := fmt.Sprintf("hello-%d", i)
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "startup"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: "us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0"}}},
				}
				mu.Lock()
				created[name] = time.Now()
				mu.Unlock()
				if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
					b.Error(err)
				}
			})
		}
		var took, toBind, bindToReady []time.Duration
		bound := map[string]time.Time{}
		deadline := time.After(2 * time.Minute)
		for len(took) < n {
			select {
			case ev := <-w.ResultChan():
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || ev.Type == watch.Deleted {
					continue
				}
				mu.Lock()
				at, ok := created[p.Name]
				if _, seen := bound[p.Name]; ok && !seen && p.Spec.NodeName != "" {
					bound[p.Name] = time.Now()
					toBind = append(toBind, time.Since(at))
				}
				if ok && ready(p) {
					took = append(took, time.Since(at))
					bindToReady = append(bindToReady, time.Since(bound[p.Name]))
					delete(created, p.Name)
				}
				mu.Unlock()
			case <-deadline:
				b.Fatalf("%d of %d pods Ready after 2 minutes", len(took), n)
			}
		}
		wg.Wait()
		w.Stop()
		// Where the CPU went while they started: the control plane, the
		// engine (node agents, kubelets), and the shims with the runc
		// processes they reaped.
		cpCPU, engineCPU, shimCPU := cpuSeconds(clusterPIDs(e, ""))-cpuBefore, cpuSeconds([]int{e.PID()})-engineCPUBefore, cpuSeconds(e.ShimPIDs())
		fmt.Printf("CPU while %d pods started: control plane %.2f s, engine %.2f s, shims and runc %.2f s (2 cores)\n", n, cpCPU, engineCPU, shimCPU)
		p50, p99 := percentile(took, 0.5), percentile(took, 0.99)
		fmt.Printf("pod startup, %d hello-app pods at once on 2 nodes: p50 %.2f s, p99 %.2f s (target p99 2 s: %.2fx the target)\n",
			n, p50.Seconds(), p99.Seconds(), p99.Seconds()/2)
		// Where it went: the scheduler's binding, then the node's part.
		fmt.Printf("  create to bound: p50 %.2f s, p99 %.2f s; bound to Ready: p50 %.2f s, p99 %.2f s\n",
			percentile(toBind, 0.5).Seconds(), percentile(toBind, 0.99).Seconds(),
			percentile(bindToReady, 0.5).Seconds(), percentile(bindToReady, 0.99).Seconds())

		// exec: `true` in one of them, through the API server's exec
		// (WebSocket, as kubectl) and the kubelet API.
		var rtts []time.Duration
		for range 20 {
			start := time.Now()
			execTrue(b, client, cfg, "hello-0")
			rtts = append(rtts, time.Since(start))
		}
		e50, e90 := percentile(rtts, 0.5), percentile(rtts, 0.9)
		fmt.Printf("exec round trip (true, over WebSocket): p50 %.0f ms, p90 %.0f ms (target 300 ms: %.2fx the target at p50)\n",
			float64(e50.Milliseconds()), float64(e90.Milliseconds()), e50.Seconds()/0.3)

		shims := printAgentCostPerPod(e, engineBefore, n)
		b.ReportMetric(p50.Seconds(), "startup-p50-s")
		b.ReportMetric(p99.Seconds(), "startup-p99-s")
		b.ReportMetric(float64(e50.Milliseconds()), "exec-p50-ms")
		b.ReportMetric(shims.pss/n, "shim-pss-MiB/pod")
	}
}

// printAgentCostPerPod prints what the node agent costs per running pod
// beyond the container's own processes (its shim, and the engine's growth
// since before), once the pods have settled; it returns the shims'.
func printAgentCostPerPod(e *harness.Engine, engineBefore memory, pods int) memory {
	time.Sleep(3 * time.Second)
	shims := measure(e.ShimPIDs())
	engineAfter := measure([]int{e.PID()})
	n := float64(pods)
	fmt.Printf("node agent per running pod beyond the container: shim RSS %.1f MiB, PSS %.1f MiB; engine (agents, kubelets) grew %.1f MiB RSS, %.1f MiB anonymous per pod\n",
		shims.rss/n, shims.pss/n, (engineAfter.rss-engineBefore.rss)/n, (engineAfter.anon-engineBefore.anon)/n)
	return shims
}

// BenchmarkPodsOnOneNode runs 100 hello-app pods (a Deployment) on a
// one-node cluster and prints how long they took to be Ready and what the
// node agent costs per pod (issue 16's real node pool).
func BenchmarkPodsOnOneNode(b *testing.B) {
	const n = 100
	for range b.N {
		e := harness.Start(b, harness.Options{})
		createCluster(b, e, zone, "dense", 1)
		client, _ := clusterClient(b, e, "dense")
		engineBefore := measure([]int{e.PID()})
		labels := map[string]string{"bench": "dense"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "hello"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](n),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: "us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0"}}},
				},
			},
		}
		took := deploymentAvailable(b, client, d, 5*time.Minute)
		fmt.Printf("%d hello-app pods of a Deployment Ready on one real node in %.1f s\n", n, took.Seconds())
		shims := printAgentCostPerPod(e, engineBefore, n)
		b.ReportMetric(shims.pss/n, "shim-pss-MiB/pod")
	}
}

func execTrue(b *testing.B, client *kubernetes.Clientset, cfg *rest.Config, pod string) {
	b.Helper()
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "hello", Command: []string{"true"}, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	u, _ := url.Parse(req.URL().String())
	exec, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	if err := exec.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard}); err != nil {
		b.Fatalf("exec: %v %s", err, out.String())
	}
}

// cpuSeconds is the CPU time processes and the children they reaped have
// used, in seconds.
func cpuSeconds(pids []int) float64 {
	var ticks float64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(data), ") ")
		f := strings.Fields(rest)
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
	}
	return ticks / 100 // USER_HZ
}
