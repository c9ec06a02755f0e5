package logcollect

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var demo = Cluster{Project: "p", Location: "us-central1-a", Name: "demo"}

func write(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

// A container's lines become k8s_container entries: stdout INFO, stderr
// ERROR, a JSON object a jsonPayload with its severity, parts joined; a
// line not ended yet waits, and the cursor says where each read stopped.
func TestContainerLines(t *testing.T) {
	dir := t.TempDir()
	src := Source{Path: filepath.Join(dir, "0.log"), Key: "web/0.log", Category: Workloads, Namespace: "default", Pod: "web-1", Container: "hello-app", Node: "node-a"}
	write(t, src.Path, "2026-12-02T10:00:00.5Z stdout F Server listening on port 8080\n"+
		"2026-12-02T10:00:01Z stderr F oops\n"+
		"2026-12-02T10:00:02Z stdout P a long \n"+
		"2026-12-02T10:00:02Z stdout F line\n"+
		`2026-12-02T10:00:03Z stdout F {"severity":"warning","message":"careful"}`+"\n"+
		"2026-12-02T10:00:04Z stdout F not ended")
	cur := Start(nil, []string{System, Workloads}, []Source{src})
	entries, cur := Collect(demo, []Source{src}, cur, 100, time.Now())
	if len(entries) != 4 {
		t.Fatalf("entries: %+v", entries)
	}
	first := entries[0]
	if first.LogName != "projects/p/logs/stdout" || first.Severity != "INFO" || first.TextPayload != "Server listening on port 8080" ||
		first.Resource.Type != "k8s_container" || first.Resource.Labels["pod_name"] != "web-1" || first.Resource.Labels["container_name"] != "hello-app" ||
		first.Resource.Labels["namespace_name"] != "default" || first.Resource.Labels["cluster_name"] != "demo" || first.Resource.Labels["location"] != "us-central1-a" ||
		!first.Timestamp.Equal(time.Date(2026, 12, 2, 10, 0, 0, 5e8, time.UTC)) {
		t.Errorf("first entry: %+v", first)
	}
	if e := entries[1]; e.LogName != "projects/p/logs/stderr" || e.Severity != "ERROR" || e.TextPayload != "oops" {
		t.Errorf("stderr entry: %+v", e)
	}
	if e := entries[2]; e.TextPayload != "a long line" {
		t.Errorf("a line in parts: %+v", e)
	}
	if e := entries[3]; e.Severity != "WARNING" || e.JSONPayload.(map[string]any)["message"] != "careful" {
		t.Errorf("a JSON line: %+v", e)
	}
	again, _ := Collect(demo, []Source{src}, cur, 100, time.Now())
	if len(again) != 0 {
		t.Errorf("read twice: %+v", again)
	}
	write(t, src.Path, "\n")
	last, cur := Collect(demo, []Source{src}, cur, 100, time.Now())
	if len(last) != 1 || last[0].TextPayload != "not ended" {
		t.Errorf("the line once ended: %+v", last)
	}
	if fi, _ := os.Stat(src.Path); cur.Offsets[src.Key] != fi.Size() {
		t.Errorf("cursor at %d of %d", cur.Offsets[src.Key], fi.Size())
	}
}

// At most max entries a time, the cursor past exactly those.
func TestCollectAtMost(t *testing.T) {
	dir := t.TempDir()
	src := Source{Path: filepath.Join(dir, "0.log"), Key: "0.log", Category: Workloads, Namespace: "default", Pod: "p", Container: "c"}
	for range 5 {
		write(t, src.Path, "2026-12-02T10:00:00Z stdout F x\n")
	}
	cur := Start(nil, []string{Workloads}, []Source{src})
	var n int
	for range 3 {
		entries, next := Collect(demo, []Source{src}, cur, 2, time.Now())
		n += len(entries)
		cur = next
	}
	if n != 5 {
		t.Errorf("%d entries over three reads of two at most", n)
	}
}

// Control-plane lines: klog's severity and time, the supervisor's lines
// skipped.
func TestComponentLines(t *testing.T) {
	dir := t.TempDir()
	src := Source{Path: filepath.Join(dir, "kube-apiserver-0.log"), Key: "logs/kube-apiserver-0.log", Category: APIServer, Component: "apiserver"}
	write(t, src.Path, "---- 2026-12-02T10:00:00Z starting id/kube-apiserver-0\n"+
		"I1202 10:00:01.250000   42 server.go:1] Serving securely\n"+
		"E1202 10:00:02.000000   42 x.go:9] failed\n")
	now := time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)
	entries, _ := Collect(demo, []Source{src}, Start(nil, []string{APIServer}, []Source{src}), 10, now)
	if len(entries) != 2 {
		t.Fatalf("entries: %+v", entries)
	}
	e := entries[0]
	if e.LogName != "projects/p/logs/container.googleapis.com%2Fapiserver" || e.Resource.Type != "k8s_control_plane_component" ||
		e.Resource.Labels["component_name"] != "apiserver" || e.Severity != "INFO" || !e.Timestamp.Equal(time.Date(2026, 12, 2, 10, 0, 1, 25e7, time.UTC)) {
		t.Errorf("entry: %+v", e)
	}
	if entries[1].Severity != "ERROR" {
		t.Errorf("an E line: %+v", entries[1])
	}
}

// Enabling a category later collects what its sources write from then
// on; disabling it forgets them.
func TestStart(t *testing.T) {
	dir := t.TempDir()
	sys := Source{Path: filepath.Join(dir, "dns.log"), Key: "dns", Category: System}
	api := Source{Path: filepath.Join(dir, "api.log"), Key: "api", Category: APIServer, Component: "apiserver"}
	write(t, sys.Path, "2026-12-02T10:00:00Z stdout F before\n")
	write(t, api.Path, "I1202 10:00:00.000000 1 a.go:1] before\n")
	srcs := []Source{sys, api}
	cur := Start(nil, []string{System}, srcs)
	_, cur = Collect(demo, srcs, cur, 10, time.Now())
	cur = Start(&cur, []string{System, APIServer}, srcs)
	write(t, api.Path, "I1202 10:00:01.000000 1 a.go:1] after\n")
	entries, cur := Collect(demo, srcs, cur, 10, time.Now())
	if len(entries) != 1 || entries[0].TextPayload != "I1202 10:00:01.000000 1 a.go:1] after" {
		t.Errorf("after enabling APISERVER: %+v", entries)
	}
	cur = Start(&cur, []string{APIServer}, srcs)
	if _, ok := cur.Offsets["dns"]; ok {
		t.Errorf("a disabled category's source is still followed: %+v", cur)
	}
	write(t, sys.Path, "2026-12-02T10:00:05Z stdout F off\n")
	if entries, _ := Collect(demo, srcs, cur, 10, time.Now()); len(entries) != 0 {
		t.Errorf("a disabled category collected: %+v", entries)
	}
}

// An event about a pod is a k8s_pod entry in the events log, the Event
// its jsonPayload; a Warning is WARNING.
func TestEventEntry(t *testing.T) {
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-1.abc", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1"},
		Reason:         "BackOff", Message: "Back-off restarting failed container", Type: corev1.EventTypeWarning,
		LastTimestamp: metav1.NewTime(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)),
	}
	e := EventEntry(demo, ev)
	if e.LogName != "projects/p/logs/events" || e.Resource.Type != "k8s_pod" || e.Resource.Labels["pod_name"] != "web-1" || e.Severity != "WARNING" ||
		e.JSONPayload.(map[string]any)["reason"] != "BackOff" || e.JSONPayload.(map[string]any)["kind"] != "Event" || !e.Timestamp.Equal(ev.LastTimestamp.Time) {
		t.Errorf("entry: %+v", e)
	}
	ev.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "node-a"}
	ev.Type = corev1.EventTypeNormal
	if e := EventEntry(demo, ev); e.Resource.Type != "k8s_node" || e.Resource.Labels["node_name"] != "node-a" || e.Severity != "INFO" {
		t.Errorf("a node's event: %+v", e)
	}
}
