package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestIdleControlPlaneRunsOnOneProcessor: once its start is over, an idle
// cluster's kube-apiserver and etcd run on one processor (internal/pace),
// which saves the wakeups of a second; a burst of requests gives
// kube-apiserver every processor, and it goes back to one when calm.
func TestIdleControlPlaneRunsOnOneProcessor(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "paced", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "paced", "--zone", zone)
	apiserver := func() string { return gomaxprocs(e.Kubectl("get", "--raw", "/metrics")) }
	etcdMetrics := etcdMetricsURL(t, e.ComponentPID("etcd-0"))
	etcd := func() string {
		resp, err := http.Get(etcdMetrics)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return gomaxprocs(string(body))
	}
	settled := func() error {
		if a, b := apiserver(), etcd(); a != "1" || b != "1" {
			return fmt.Errorf("GOMAXPROCS: kube-apiserver %s, etcd %s", a, b)
		}
		return nil
	}
	if err := harness.Poll(time.Minute, time.Second, settled); err != nil {
		t.Fatalf("an idle control plane, its start over: %v", err)
	}
	if runtime.NumCPU() == 1 {
		return // one processor is all there is
	}

	var busy error
	harness.UnderLoad(func(context.Context) error {
		_, err := e.Run("kubectl", "get", "--raw", "/openapi/v2")
		return err
	}, func() {
		busy = harness.Poll(30*time.Second, 500*time.Millisecond, func() error {
			if n := apiserver(); n == "1" {
				return fmt.Errorf("GOMAXPROCS %s while busy", n)
			}
			return nil
		})
	})
	if busy != nil {
		t.Fatalf("kube-apiserver under a burst of OpenAPI reads: %v", busy)
	}
	if err := harness.Poll(time.Minute, time.Second, settled); err != nil {
		t.Fatalf("calm again: %v", err)
	}
}

var gomaxprocsLine = regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads (\S+)$`)

// gomaxprocs is the GOMAXPROCS a component's Prometheus metrics report.
func gomaxprocs(metrics string) string {
	m := gomaxprocsLine.FindStringSubmatch(metrics)
	if m == nil {
		return "(not reported)"
	}
	return m[1]
}

// etcdMetricsURL is the metrics URL of the etcd member with pid, from its
// command line.
func etcdMetricsURL(t *testing.T, pid int) string {
	t.Helper()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		if url, ok := strings.CutPrefix(arg, "--listen-metrics-urls="); ok {
			return url + "/metrics"
		}
	}
	t.Fatalf("etcd (pid %d) has no metrics URL: %q", pid, cmdline)
	return ""
}
