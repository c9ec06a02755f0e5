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

// densityTopology is the etcd topology of BenchmarkDensity's clusters:
// "stacked" (an etcd each) unless KUBEYARD_BENCH_ETCD says "shared" (one
// etcd for all, each cluster under its own prefix and user).
func densityTopology(b *testing.B) string {
	switch t := os.Getenv("KUBEYARD_BENCH_ETCD"); t {
	case "", "stacked":
		return "stacked"
	case "shared":
		return t
	default:
		b.Fatalf("KUBEYARD_BENCH_ETCD=%q: want stacked or shared", t)
		return ""
	}
}

// BenchmarkDensity creates zonal clusters of one node each, one after the
// other, all alive at once, and prints every tenth create time (target:
// the last at most 2x the first), their memory and idle CPU per cluster,
// and whether every cluster still answers kubectl (gcloud get-credentials,
// then kubectl get nodes) with the slowest answer. When a create fails,
// the clusters alive are measured and the bench fails.
func BenchmarkDensity(b *testing.B) {
	n := densityClusters(b)
	topology := densityTopology(b)
	labels := map[string]string{"kubeyard-etcd-topology": topology}
	fmt.Printf("etcd topology: %s\n", topology)
	for range b.N {
		e := harness.Start(b, harness.Options{})
		// A create that fails (the machine full) ends the series: what is
		// alive is measured all the same, and the bench fails at the end.
		var creates []time.Duration
		var failed error
		for i := range n {
			took, err := tryCreateCluster(e, zone, fmt.Sprintf("dense-%02d", i), 1, labels)
			if err != nil {
				failed = fmt.Errorf("create %d of %d: %w", i+1, n, err)
				fmt.Println(failed)
				break
			}
			creates = append(creates, took)
			if i == 0 || (i+1)%10 == 0 || i == n-1 {
				m := measure(controlPlanePIDs(e))
				fmt.Printf("create %d: %.2f s; %d control planes PSS %.0f MiB (RSS %.0f), engine PSS %.0f MiB\n",
					i+1, took.Seconds(), i+1, m.pss, m.rss, measure([]int{e.PID()}).pss)
			}
		}
		alive := len(creates)
		if alive == 0 {
			b.Fatal(failed)
		}
		time.Sleep(settle) // the last create settles
		cp := measure(controlPlanePIDs(e))
		engine := measure([]int{e.PID()})
		cpu, idle := sharesLine(cpuShares(idlePIDs(e), idleSpan))

		var slowest time.Duration
		answered := 0
		for i := range alive {
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

		first, last := creates[0], creates[alive-1]
		fmt.Printf("%d of %d zonal clusters of one node alive at once: create 1 %.2f s, create %d %.2f s (last/first %.2fx; target 2x or less)\n",
			alive, n, first.Seconds(), alive, last.Seconds(), last.Seconds()/first.Seconds())
		per := float64(alive)
		fmt.Printf("  memory: control planes PSS %.0f MiB in all, %.0f MiB per cluster (RSS %.0f); engine PSS %.0f MiB\n",
			cp.pss, cp.pss/per, cp.rss/per, engine.pss)
		fmt.Printf("  idle CPU of one core, %s on: %.2f%% per cluster (target 1%%: %.2fx); all of it %s\n",
			idleSpan, idle/per, idle/per, cpu)
		fmt.Printf("  kubectl get nodes answered in %d of %d clusters, the slowest in %.2f s\n", answered, alive, slowest.Seconds())
		b.ReportMetric(last.Seconds()/first.Seconds(), "last-vs-first-x")
		b.ReportMetric(cp.pss/per, "pss-MiB/cluster")
		b.ReportMetric(idle/per, "idle-cpu-%/cluster")
		if failed != nil {
			b.Fatal(failed)
		}
	}
}
