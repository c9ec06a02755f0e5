package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	container "google.golang.org/api/container/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeyard/kubeyard/internal/logcollect"
	"github.com/kubeyard/kubeyard/internal/logging"
)

// entriesMatching counts the entries the filter keeps.
func entriesMatching(t *testing.T, g *rig, filter string) int {
	t.Helper()
	f, err := logging.ParseFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := g.e.Logs().List(logging.Query{Projects: []string{project}, Filter: f, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(raw)
}

// loggingConfig: GKE's default (system and workloads), components asked
// for, refusals by field; what is collected follows it, each line once,
// across engines too.
func TestLogging(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("logs", 1)
	c := g.cluster("logs").Cluster
	if c.LoggingService != "logging.googleapis.com/kubernetes" || !slices.Equal(loggingOf(c), []string{"SYSTEM_COMPONENTS", "WORKLOADS"}) {
		t.Errorf("default logging: %s %v", c.LoggingService, loggingOf(c))
	}
	for _, tc := range []struct {
		name   string
		change func(*container.Cluster)
		field  string
	}{
		{"an unknown component", func(c *container.Cluster) {
			c.LoggingConfig = &container.LoggingConfig{ComponentConfig: &container.LoggingComponentConfig{EnableComponents: []string{"SYSTEM_COMPONENTS", "KCP_SSHD"}}}
		}, loggingField},
		{"workloads without system", func(c *container.Cluster) {
			c.LoggingConfig = &container.LoggingConfig{ComponentConfig: &container.LoggingComponentConfig{EnableComponents: []string{"WORKLOADS"}}}
		}, loggingField},
		{"another logging service", func(c *container.Cluster) { c.LoggingService = "logging.googleapis.com" }, loggingServiceField},
	} {
		cl := &container.Cluster{Name: "refused", NodePools: []*container.NodePool{{Name: "default-pool", InitialNodeCount: 1}}}
		tc.change(cl)
		if _, err := g.e.CreateCluster(ctx, project, zone, cl); !refusedOn(err, tc.field) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT on %s", tc.name, err, tc.field)
		}
	}

	dir := t.TempDir()
	web := logcollect.Source{Path: filepath.Join(dir, "web.log"), Key: "web", Category: logcollect.Workloads, Namespace: "default", Pod: "web-1", Container: "hello-app"}
	dns := logcollect.Source{Path: filepath.Join(dir, "dns.log"), Key: "dns", Category: logcollect.System, Namespace: "kube-system", Pod: "coredns-1", Container: "coredns"}
	api := logcollect.Source{Path: filepath.Join(dir, "api.log"), Key: "api", Category: logcollect.APIServer, Component: "apiserver"}
	line := func(src logcollect.Source, msg string) {
		f, err := os.OpenFile(src.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if src.Component != "" {
			fmt.Fprintf(f, "I1202 10:00:00.000000 1 a.go:1] %s\n", msg)
		} else {
			fmt.Fprintf(f, "2026-12-02T10:00:00Z stdout F %s\n", msg)
		}
	}
	for i := range 100 { // more than one batch
		line(web, fmt.Sprint("request ", i))
	}
	line(dns, "ready")
	line(api, "serving")
	g.rt.SetLogSources("logs", []logcollect.Source{web, dns, api})
	containers := `resource.type="k8s_container" AND resource.labels.cluster_name="logs"`
	g.eventually("container logs collected", func() error {
		if n := entriesMatching(t, g, containers); n != 101 {
			return fmt.Errorf("%d container entries", n)
		}
		return nil
	})
	if n := entriesMatching(t, g, containers+` AND resource.labels.pod_name="web-1" AND textPayload="request 7"`); n != 1 {
		t.Errorf("web-1's request 7: %d entries", n)
	}
	if n := entriesMatching(t, g, `resource.type="k8s_control_plane_component"`); n != 0 {
		t.Errorf("control-plane entries without APISERVER: %d", n)
	}

	event := func(rv, reason string) corev1.Event {
		return corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web-1." + rv, Namespace: "default", ResourceVersion: rv},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1"}, Reason: reason, Type: corev1.EventTypeWarning}
	}
	g.rt.SetEvents("logs", []corev1.Event{event("10", "BackOff")})
	events := `logName="projects/p/logs/events" AND resource.type="k8s_pod"`
	g.eventually("the event", func() error {
		if n := entriesMatching(t, g, events+` AND jsonPayload.reason="BackOff" AND severity=WARNING`); n != 1 {
			return fmt.Errorf("%d event entries", n)
		}
		return nil
	})

	// Nothing twice across engines: the cursor is stored with the entries.
	g.restart()
	line(web, "after the restart")
	g.rt.SetEvents("logs", []corev1.Event{event("10", "BackOff"), event("12", "Killing")})
	g.eventually("the line and the event after the restart", func() error {
		if n := entriesMatching(t, g, containers); n != 102 {
			return fmt.Errorf("%d container entries", n)
		}
		if n := entriesMatching(t, g, events); n != 2 {
			return fmt.Errorf("%d event entries", n)
		}
		return nil
	})

	// System and the API server only: workloads stop, the API server's
	// lines from now on are collected.
	update := &container.ClusterUpdate{DesiredLoggingConfig: &container.LoggingConfig{ComponentConfig: &container.LoggingComponentConfig{EnableComponents: []string{"APISERVER", "SYSTEM_COMPONENTS"}}}}
	g.wait(g.e.UpdateCluster(ctx, project, zone, "logs", update))
	if got := loggingOf(g.cluster("logs").Cluster); !slices.Equal(got, []string{"SYSTEM_COMPONENTS", "APISERVER"}) {
		t.Errorf("after the update: %v", got)
	}
	line(web, "not collected")
	line(api, "collected")
	g.eventually("the API server's line", func() error {
		if n := entriesMatching(t, g, `resource.type="k8s_control_plane_component" AND resource.labels.component_name="apiserver"`); n != 1 {
			return fmt.Errorf("%d control-plane entries", n)
		}
		return nil
	})
	if n := entriesMatching(t, g, containers+` AND textPayload="not collected"`); n != 0 {
		t.Errorf("a workload line collected with WORKLOADS off: %d", n)
	}
	if _, err := g.e.UpdateCluster(ctx, project, zone, "logs", &container.ClusterUpdate{DesiredLoggingService: "elsewhere"}); !refusedOn(err, "update.desiredLoggingService") {
		t.Errorf("another logging service: %v", err)
	}
}
