package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/netns"
)

// podsOn starts a hello-app pod per node name given and returns them
// Ready, in that order.
func podsOn(b *testing.B, client *kubernetes.Clientset, nodes ...string) []*corev1.Pod {
	b.Helper()
	ctx := context.Background()
	for i, n := range nodes {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("p", i)}, Spec: corev1.PodSpec{NodeName: n,
			Containers: []corev1.Container{{Name: "hello", Image: "us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0"}}}}
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	var pods []*corev1.Pod
	for i := range nodes {
		if err := harness.Poll(time.Minute, 100*time.Millisecond, func() error {
			p, err := client.CoreV1().Pods("default").Get(ctx, fmt.Sprint("p", i), metav1.GetOptions{})
			if err != nil || !ready(p) {
				return fmt.Errorf("p%d not ready: %v", i, err)
			}
			pods = append(pods, p)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	return pods
}

// path is what the benchmark measures between two pods: the latency of a
// request to the hello-app server (a new connection each, as wget makes
// it) and the throughput of one TCP stream (to a sink in the other pod's
// namespace).
type path struct {
	p50, p99 time.Duration
	mbps     float64
}

// podNS is the network namespace of a pod of a real node.
func podNS(e *harness.Engine, p *corev1.Pod) string {
	return e.Prefix() + "-" + p.Spec.NodeName + "-" + string(p.UID)
}

// requests times n HTTP GETs from inside network namespace ns, a new
// connection each (as wget makes it), going round the targets.
func requests(b *testing.B, ns string, n int, targets ...string) []time.Duration {
	b.Helper()
	var lat []time.Duration
	err := netns.Do(ns, func() error {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for i := range n {
			start := time.Now()
			resp, err := client.Get(targets[i%len(targets)])
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(start))
		}
		return nil
	})
	if err != nil {
		b.Fatalf("requests from %s: %v", ns, err)
	}
	return lat
}

func measurePath(b *testing.B, e *harness.Engine, from, to *corev1.Pod) path {
	b.Helper()
	ns := podNS(e, from)
	lat := requests(b, ns, 300, "http://"+net.JoinHostPort(to.Status.PodIP, "8080")+"/")
	// The sink: a listener in the other pod's namespace, on another port.
	sinkNS := podNS(e, to)
	var ln net.Listener
	if err := netns.Do(sinkNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(to.Status.PodIP, "9000"))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	const size = 512 << 20
	var took time.Duration
	err := netns.Do(ns, func() error {
		c, err := net.Dial("tcp", net.JoinHostPort(to.Status.PodIP, "9000"))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		start := time.Now()
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		took = time.Since(start)
		return nil
	})
	if err != nil {
		b.Fatalf("stream from %s to %s: %v", from.Name, to.Name, err)
	}
	return path{percentile(lat, 0.5), percentile(lat, 0.99), size * 8 / took.Seconds() / 1e6}
}

// BenchmarkIntraNodeVisibility prints pod-to-pod request latency (p50,
// p99 of 300 requests, a connection each) and single-stream throughput:
// between two pods of one node with intra-node visibility off and on (the
// ratio is the cost of the detour through the VPC network), and across
// nodes.
func BenchmarkIntraNodeVisibility(b *testing.B) {
	e := harness.Start(b, harness.Options{})
	createCluster(b, e, zone, "inv", 2)
	client, _ := clusterClient(b, e, "inv")
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 2 {
		b.Fatalf("nodes: %v", err)
	}
	a, other := nodes.Items[0].Name, nodes.Items[1].Name
	pods := podsOn(b, client, a, a, other)
	cluster := fmt.Sprintf("/v1/projects/%s/locations/%s/clusters/inv", e.Project, zone)
	visibility := func(on bool) {
		code, op := e.API("PUT", cluster, e.Token(), map[string]any{"update": map[string]any{"desiredIntraNodeVisibilityConfig": map[string]any{"enabled": on}}})
		if code != 200 {
			b.Fatalf("update: HTTP %d %v", code, op)
		}
		waitOperation(b, e, zone, op["name"].(string))
	}
	b.ResetTimer()
	for range b.N {
		off := measurePath(b, e, pods[0], pods[1])
		across := measurePath(b, e, pods[0], pods[2])
		visibility(true)
		on := measurePath(b, e, pods[0], pods[1])
		visibility(false)
		fmt.Printf("pod to pod, one node, intra-node visibility off: p50 %.2f ms, p99 %.2f ms, %.0f Mbit/s\n", ms(off.p50), ms(off.p99), off.mbps)
		fmt.Printf("pod to pod, one node, intra-node visibility on:  p50 %.2f ms, p99 %.2f ms, %.0f Mbit/s (on/off: latency %.2fx, throughput %.2fx)\n",
			ms(on.p50), ms(on.p99), on.mbps, on.p50.Seconds()/off.p50.Seconds(), on.mbps/off.mbps)
		fmt.Printf("pod to pod, across nodes:                        p50 %.2f ms, p99 %.2f ms, %.0f Mbit/s\n", ms(across.p50), ms(across.p99), across.mbps)
		b.ReportMetric(on.p50.Seconds()/off.p50.Seconds(), "detour-latency-x")
		b.ReportMetric(on.mbps/off.mbps, "detour-throughput-x")
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkFlowLogLatency prints how long a connection's flow entry takes
// to be readable through the Logging API (entries:list, as gcloud logging
// read calls it) after the connection ends, with flow logs on the
// default subnetwork. Target: the aggregation interval (5 s) plus 1 s.
func BenchmarkFlowLogLatency(b *testing.B) {
	e := harness.Start(b, harness.Options{})
	createCluster(b, e, zone, "flows", 2)
	client, _ := clusterClient(b, e, "flows")
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 2 {
		b.Fatalf("nodes: %v", err)
	}
	pods := podsOn(b, client, nodes.Items[0].Name, nodes.Items[1].Name)
	subnet := fmt.Sprintf("/compute/v1/projects/%s/regions/us-central1/subnetworks/default", e.Project)
	if code, out := e.API("PATCH", subnet, e.Token(), map[string]any{"enableFlowLogs": true, "logConfig": map[string]any{"enable": true, "flowSampling": 1.0}}); code != 200 {
		b.Fatalf("flow logs on: HTTP %d %v", code, out)
	}
	ns := podNS(e, pods[0])
	b.ResetTimer()
	for range b.N {
		var waits []time.Duration
		for range 5 {
			var port int
			if err := netns.Do(ns, func() error {
				c, err := net.Dial("tcp", net.JoinHostPort(pods[1].Status.PodIP, "8080"))
				if err != nil {
					return err
				}
				port = c.LocalAddr().(*net.TCPAddr).Port
				fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
				io.Copy(io.Discard, c)
				return c.Close()
			}); err != nil {
				b.Fatal(err)
			}
			ended := time.Now()
			filter := fmt.Sprintf(`logName="projects/%s/logs/compute.googleapis.com%%2Fvpc_flows" AND jsonPayload.connection.src_port=%d`, e.Project, port)
			if err := harness.Poll(30*time.Second, 50*time.Millisecond, func() error {
				code, out := e.API("POST", "/v2/entries:list", e.Token(), map[string]any{"resourceNames": []string{"projects/" + e.Project}, "filter": filter})
				if code != 200 {
					return fmt.Errorf("entries:list: HTTP %d %v", code, out)
				}
				if entries, _ := out["entries"].([]any); len(entries) == 0 {
					return fmt.Errorf("no entry for the connection from port %d yet", port)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			waits = append(waits, time.Since(ended))
			time.Sleep(time.Duration(len(waits)) * 700 * time.Millisecond) // ends at different points of the interval
		}
		p50, worst := percentile(waits, 0.5), percentile(waits, 1)
		fmt.Printf("connection end to its flow entry readable: median %.2f s, max %.2f s of 5 (target 6 s: %.2fx)\n", p50.Seconds(), worst.Seconds(), worst.Seconds()/6)
		b.ReportMetric(worst.Seconds(), "flow-entry-max-s")
	}
}
