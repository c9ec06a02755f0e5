// Package bench measures kubeyard against its targets and prints the
// figures: run with `make bench`. Targets on a 2-core machine: a zonal
// 3-node cluster created (operation DONE, every node Ready) in 10 s or
// less; 400 MiB or less of control-plane memory per zonal cluster.
package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

const zone = "us-central1-a"

// createCluster creates a cluster through the REST API and returns the time
// from the call to its operation DONE (which waits for Ready nodes).
func createCluster(b *testing.B, e *harness.Engine, location, name string, nodes int) time.Duration {
	b.Helper()
	took, err := tryCreateCluster(e, location, name, nodes)
	if err != nil {
		b.Fatal(err)
	}
	return took
}

// tryCreateCluster is createCluster, returning what went wrong; labels,
// when given, are the cluster's resource labels.
func tryCreateCluster(e *harness.Engine, location, name string, nodes int, labels ...map[string]string) (time.Duration, error) {
	c := map[string]any{"name": name, "nodePools": []any{map[string]any{"name": "default-pool", "initialNodeCount": nodes}}}
	if len(labels) > 0 {
		c["resourceLabels"] = labels[0]
	}
	body := map[string]any{"cluster": c}
	start := time.Now()
	code, op := e.API("POST", fmt.Sprintf("/v1/projects/%s/locations/%s/clusters", e.Project, location), e.Token(), body)
	if code != 200 {
		return 0, fmt.Errorf("create %s: HTTP %d %v", name, code, op)
	}
	if err := operationDone(e, location, op["name"].(string)); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// waitOperation waits until the operation is DONE, failing on its error.
func waitOperation(b *testing.B, e *harness.Engine, location, name string) {
	b.Helper()
	if err := operationDone(e, location, name); err != nil {
		b.Fatal(err)
	}
}

func operationDone(e *harness.Engine, location, name string) error {
	path := fmt.Sprintf("/v1/projects/%s/locations/%s/operations/%s", e.Project, location, name)
	var cur map[string]any
	if err := harness.Poll(10*time.Minute, 20*time.Millisecond, func() error {
		if _, cur = e.API("GET", path, e.Token(), nil); cur["status"] != "DONE" {
			return fmt.Errorf("operation %s is %v", name, cur["status"])
		}
		return nil
	}); err != nil {
		return err
	}
	if cur["error"] != nil {
		return fmt.Errorf("operation %s failed: %v", name, cur["error"])
	}
	return nil
}

// memory is a set of processes' memory, in MiB: RSS (what ps shows; the
// multi-call binary's text is counted once per process), anonymous memory,
// and PSS (shared pages split among the processes sharing them: the memory
// the processes really cost).
type memory struct{ rss, anon, pss float64 }

func readKB(path, field string) float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

func measure(pids []int) memory {
	var m memory
	for _, pid := range pids {
		status := fmt.Sprintf("/proc/%d/status", pid)
		m.rss += readKB(status, "VmRSS") / 1024
		m.anon += readKB(status, "RssAnon") / 1024
		m.pss += readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss") / 1024
	}
	return m
}

// cpuShares is each process's CPU over d, in percent of one core, summed
// by kind: the name before "@" ("kube-apiserver-0@id", "kube-proxy@node").
func cpuShares(pids map[string]int, d time.Duration) map[string]float64 {
	before := map[string]float64{}
	for name, pid := range pids {
		before[name] = cpuSeconds([]int{pid})
	}
	time.Sleep(d)
	out := map[string]float64{}
	for name, pid := range pids {
		kind, _, _ := strings.Cut(name, "@")
		if after := cpuSeconds([]int{pid}); after > 0 { // 0: it ended meanwhile
			out[kind] += 100 * (after - before[name]) / d.Seconds()
		}
	}
	return out
}

// sharesLine prints shares as "total T% (biggest first: a x%, b y%, ...)"
// and returns the total.
func sharesLine(shares map[string]float64) (string, float64) {
	kinds := make([]string, 0, len(shares))
	total := 0.0
	for k, v := range shares {
		kinds = append(kinds, k)
		total += v
	}
	sort.Slice(kinds, func(i, j int) bool { return shares[kinds[i]] > shares[kinds[j]] })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %.2f%%", k, shares[k])
	}
	return fmt.Sprintf("%.2f%% (%s)", total, strings.Join(parts, ", ")), total
}

func values(m map[string]int) []int {
	out := make([]int, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func clusterPIDs(e *harness.Engine, clusterID string) []int {
	var pids []int
	for name, pid := range e.ComponentPIDs() {
		if clusterID == "" || strings.HasSuffix(name, "@"+clusterID) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// controlPlanePIDs are every cluster's control-plane processes, and the
// shared etcd, which clusters of the shared topology use together.
func controlPlanePIDs(e *harness.Engine) []int {
	pids := clusterPIDs(e, "")
	if pid, ok := e.ProcessPIDs()["shared-etcd@engine"]; ok {
		pids = append(pids, pid)
	}
	return pids
}

func clusterIDs(e *harness.Engine) []string {
	seen := map[string]bool{}
	var ids []string
	for name := range e.ComponentPIDs() {
		_, id, _ := strings.Cut(name, "@")
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// BenchmarkZonalCluster prints create time and control-plane memory for one
// zonal 3-node cluster, then for the tenth of ten clusters alive together.
func BenchmarkZonalCluster(b *testing.B) {
	for range b.N {
		e := harness.Start(b, harness.Options{})
		first := createCluster(b, e, zone, "bench-0", 3)
		time.Sleep(5 * time.Second) // let the control plane settle before measuring memory
		one := measure(clusterPIDs(e, ""))
		fmt.Printf("zonal 3-node create: %.2f s (target 10 s: %.2fx the target)\n", first.Seconds(), first.Seconds()/10)
		fmt.Printf("control plane of 1 cluster: RSS %.0f MiB, anonymous %.0f MiB, PSS %.0f MiB (target 400 MiB: RSS %.2fx, PSS %.2fx)\n",
			one.rss, one.anon, one.pss, one.rss/400, one.pss/400)

		var creates []time.Duration
		for i := 1; i < 10; i++ {
			creates = append(creates, createCluster(b, e, zone, fmt.Sprintf("bench-%d", i), 3))
		}
		time.Sleep(5 * time.Second)
		ids := clusterIDs(e)
		all := measure(clusterPIDs(e, ""))
		n := float64(len(ids))
		last := creates[len(creates)-1]
		fmt.Printf("with %d clusters alive: 10th create %.2f s; per cluster RSS %.0f MiB, anonymous %.0f MiB, PSS %.0f MiB\n",
			len(ids), last.Seconds(), all.rss/n, all.anon/n, all.pss/n)
		fmt.Printf("creates 2..10: %v\n", creates)
		b.ReportMetric(first.Seconds(), "create-s")
		b.ReportMetric(last.Seconds(), "create10-s")
		b.ReportMetric(one.rss, "rss-MiB")
		b.ReportMetric(one.pss, "pss-MiB")
		b.ReportMetric(all.pss/n, "pss10-MiB/cluster")
	}
}

// BenchmarkRegionalCluster prints the time to create a regional cluster
// (three control-plane replicas joined the kubeadm way, one node per zone)
// and its control-plane memory. Target: 20 s or less.
func BenchmarkRegionalCluster(b *testing.B) {
	for range b.N {
		e := harness.Start(b, harness.Options{})
		took := createCluster(b, e, "us-central1", "ha", 1)
		time.Sleep(5 * time.Second)
		m := measure(clusterPIDs(e, ""))
		fmt.Printf("regional create (3 replicas, 3 nodes): %.2f s (target 20 s: %.2fx the target)\n", took.Seconds(), took.Seconds()/20)
		fmt.Printf("regional control plane: RSS %.0f MiB, anonymous %.0f MiB, PSS %.0f MiB\n", m.rss, m.anon, m.pss)
		b.ReportMetric(took.Seconds(), "create-s")
		b.ReportMetric(m.pss, "pss-MiB")
	}
}
