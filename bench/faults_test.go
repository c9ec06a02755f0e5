package bench

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// BenchmarkRegionalFaults prints, for each fault on a regional cluster,
// what harness.Clients clients sending requests through the endpoint the
// whole time saw: SIGTERM and SIGKILL of a kube-apiserver (reads), SIGKILL
// of an etcd member (writes), SIGKILL of the engine (reads). Targets: no
// failed request for SIGTERM and the engine; at most the requests in flight
// for a SIGKILL.
func BenchmarkRegionalFaults(b *testing.B) {
	for range b.N {
		e := harness.Start(b, harness.Options{})
		createCluster(b, e, "us-central1", "ha", 1)
		e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")
		client := e.AdminClient(e.ClusterDir())
		reads := harness.Reads(client)
		signal := func(prefix string, sig syscall.Signal) func() {
			return func() {
				victim := e.ComponentPID(prefix)
				if err := syscall.Kill(victim, sig); err != nil {
					b.Fatal(err)
				}
				e.AwaitRestart(prefix, victim)
			}
		}
		report := func(fault string, l harness.Load, target string) {
			fmt.Printf("%-32s %5d ok, %d failed (target: %s)\n", fault+":", l.OK, l.Failed, target)
			b.ReportMetric(float64(l.Failed), "failed-"+fault)
		}
		report("sigterm-apiserver", harness.UnderLoad(reads, signal("kube-apiserver-1@", syscall.SIGTERM)), "0")
		report("sigkill-apiserver", harness.UnderLoad(reads, signal("kube-apiserver-0@", syscall.SIGKILL)), fmt.Sprintf("<= %d in flight", harness.Clients))
		down := make(chan struct{})
		writes, during := harness.Writes(client, down)
		l := harness.UnderLoad(writes, func() { close(down); signal("etcd-2@", syscall.SIGKILL)() })
		report("sigkill-etcd-member", l, fmt.Sprintf("<= %d: per client, one in flight on the member and one proposal lost with it if it led", 2*harness.Clients))
		fmt.Printf("%-32s %5d writes started after the kill succeeded\n", "", during.Load())
		report("sigkill-engine", harness.UnderLoad(reads, func() {
			e.Kill()
			time.Sleep(2 * time.Second) // the cluster serves with no engine
			e.Restart()
		}), "0")
	}
}
