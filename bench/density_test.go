package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// densityClusters is how many zonal clusters BenchmarkDensity keeps alive
// together (issue 16: 50); KUBEYARD_BENCH_CLUSTERS changes it.
func densityClusters(b *testing.B) int {
	n := 50
	if v := os.Getenv("KUBEYARD_BENCH_CLUSTERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			b.Fatalf("KUBEYARD_BENCH_CLUSTERS=%q: want a number of 2 or more", v)
		}
	}
	return n
}

// BenchmarkDensity creates zonal clusters of one node each, one after the
// other, all alive at once, and prints every tenth create time (target:
// the last at most 2x the first), their memory and idle CPU per cluster,
// and whether every cluster still answers kubectl (gcloud get-credentials,
// then kubectl get nodes) with the slowest answer.
func BenchmarkDensity(b *testing.B) {
	n := densityClusters(b)
	for range b.N {
		e := harness.Start(b, harness.Options{})
		var creates []time.Duration
		for i := range n {
			took := createCluster(b, e, zone, fmt.Sprintf("dense-%02d", i), 1)
			creates = append(creates, took)
			if i == 0 || (i+1)%10 == 0 || i == n-1 {
				m := measure(clusterPIDs(e, ""))
				fmt.Printf("create %d: %.2f s; %d control planes PSS %.0f MiB (RSS %.0f), engine PSS %.0f MiB\n",
					i+1, took.Seconds(), i+1, m.pss, m.rss, measure([]int{e.PID()}).pss)
			}
		}
		time.Sleep(10 * time.Second) // the last create settles
		cp := measure(clusterPIDs(e, ""))
		engine := measure([]int{e.PID()})
		cpu, idle := sharesLine(cpuShares(idlePIDs(e), idleSpan))

		var slowest time.Duration
		answered := 0
		for i := range n {
			name := fmt.Sprintf("dense-%02d", i)
			e.Gcloud("container", "clusters", "get-credentials", name, "--zone", zone)
			start := time.Now()
			if out, err := e.Run("kubectl", "get", "nodes", "-o", "name"); err == nil && strings.Contains(out, "node/") {
				answered++
			} else {
				b.Errorf("cluster %s: kubectl get nodes: %v\n%s", name, err, out)
			}
			slowest = max(slowest, time.Since(start))
		}

		first, last := creates[0], creates[n-1]
		fmt.Printf("%d zonal clusters of one node alive at once: create 1 %.2f s, create %d %.2f s (last/first %.2fx; target 2x or less)\n",
			n, first.Seconds(), n, last.Seconds(), last.Seconds()/first.Seconds())
		fmt.Printf("  memory: control planes PSS %.0f MiB in all, %.0f MiB per cluster (RSS %.0f); engine PSS %.0f MiB\n",
			cp.pss, cp.pss/float64(n), cp.rss/float64(n), engine.pss)
		fmt.Printf("  idle CPU of one core, %s on: %.2f%% per cluster (target 1%%: %.2fx); all of it %s\n",
			idleSpan, idle/float64(n), idle/float64(n), cpu)
		fmt.Printf("  kubectl get nodes answered in %d of %d clusters, the slowest in %.2f s\n", answered, n, slowest.Seconds())
		b.ReportMetric(last.Seconds()/first.Seconds(), "last-vs-first-x")
		b.ReportMetric(cp.pss/float64(n), "pss-MiB/cluster")
		b.ReportMetric(idle/float64(n), "idle-cpu-%/cluster")
	}
}
