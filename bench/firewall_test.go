package bench

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/netns"
)

// BenchmarkFirewallEnforcement prints how long a firewall rule change
// takes to be enforced on packets between two nodes: from the Compute API
// call inserting a deny rule to the first connection from one pod to the
// other that it stops, and from the call deleting it to the first one
// that gets through again (each time the start of the first attempt that
// saw it; attempts every 10 ms). Target: under 1 s.
func BenchmarkFirewallEnforcement(b *testing.B) {
	e := harness.Start(b, harness.Options{})
	createCluster(b, e, zone, "fw", 2)
	client, _ := clusterClient(b, e, "fw")
	ctx := context.Background()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 2 {
		b.Fatalf("nodes: %v", err)
	}
	pods := podsOn(b, client, nodes.Items[0].Name, nodes.Items[1].Name)
	from := podNS(e, pods[0])
	to := net.JoinHostPort(pods[1].Status.PodIP, "8080")
	connects := func() bool {
		return netns.Do(from, func() error {
			c, err := net.DialTimeout("tcp", to, 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	}
	// until returns the time from begin to the start of the first attempt
	// whose outcome is want.
	until := func(begin time.Time, want bool) time.Duration {
		deadline := begin.Add(30 * time.Second)
		for time.Now().Before(deadline) {
			start := time.Now()
			if connects() == want {
				return start.Sub(begin)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.Fatalf("connections never became %v", want)
		return 0
	}
	if !connects() {
		b.Fatalf("p0 does not reach %s before any rule", to)
	}
	rules := fmt.Sprintf("/compute/v1/projects/%s/global/firewalls", e.Project)
	b.ResetTimer()
	for range b.N {
		var added, removed []time.Duration
		for range 3 {
			begin := time.Now()
			code, out := e.API("POST", rules, e.Token(), map[string]any{"name": "deny-p0", "network": "global/networks/default", "priority": 100,
				"denied": []any{map[string]any{"IPProtocol": "tcp", "ports": []string{"8080"}}}, "sourceRanges": []string{pods[0].Status.PodIP + "/32"}})
			if code != 200 {
				b.Fatalf("insert: HTTP %d %v", code, out)
			}
			added = append(added, until(begin, false))
			begin = time.Now()
			if code, out := e.API("DELETE", rules+"/deny-p0", e.Token(), nil); code != 200 {
				b.Fatalf("delete: HTTP %d %v", code, out)
			}
			removed = append(removed, until(begin, true))
		}
		a, r := percentile(added, 0.5), percentile(removed, 0.5)
		fmt.Printf("firewall rule change to enforcement between nodes: deny inserted %.0f ms, deleted %.0f ms (median of 3; max %.0f, %.0f ms; target 1 s: %.2fx, %.2fx)\n",
			float64(a.Milliseconds()), float64(r.Milliseconds()), float64(percentile(added, 1).Milliseconds()), float64(percentile(removed, 1).Milliseconds()), a.Seconds(), r.Seconds())
		b.ReportMetric(float64(a.Milliseconds()), "deny-ms")
		b.ReportMetric(float64(r.Milliseconds()), "allow-ms")
	}
}
