package logging

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func flowEntry(src, dst string, port int, bytes string, at time.Time) *record {
	e := Entry{
		LogName:   "projects/demo/logs/compute.googleapis.com%2Fvpc_flows",
		Resource:  Resource{Type: "gce_subnetwork", Labels: map[string]string{"subnetwork_name": "default", "location": "us-central1-a"}},
		Timestamp: at, Severity: "INFO", InsertID: "x" + src,
		Labels: map[string]string{"compute.googleapis.com/resource_name": "gke-node-1"},
		JSONPayload: map[string]any{
			"connection": map[string]any{"src_ip": src, "dest_ip": dst, "dest_port": port, "protocol": 6},
			"bytes_sent": bytes, "reporter": "SRC",
			"src_gke_details": map[string]any{"pod": map[string]any{"pod_name": "pod-1", "pod_namespace": "default"}},
		},
	}
	raw, _ := json.Marshal(e)
	return &record{project: "demo", logName: e.LogName, at: at, raw: raw}
}

func TestFilters(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a := flowEntry("10.4.0.2", "10.4.0.3", 8080, "1234", t0)
	b := flowEntry("10.4.0.3", "10.4.1.5", 443, "99", t0.Add(time.Hour))
	text := func() *record {
		raw, _ := json.Marshal(Entry{LogName: "projects/demo/logs/syslog", TextPayload: "The Robot started", Severity: "ERROR", Timestamp: t0})
		return &record{project: "demo", logName: "projects/demo/logs/syslog", at: t0, raw: raw}
	}()
	all := map[string]*record{"a": a, "b": b, "text": text}
	for _, tc := range []struct {
		filter string
		want   string // the names of the entries that match, in order a b text
	}{
		{``, "a b text"},
		{`logName="projects/demo/logs/compute.googleapis.com%2Fvpc_flows"`, "a b"},
		{`logName="projects/demo/logs/compute.googleapis.com%2Fvpc_flows" AND jsonPayload.connection.src_ip="10.4.0.2" AND jsonPayload.connection.dest_ip="10.4.0.3"`, "a"},
		{`jsonPayload.connection.dest_port=8080`, "a"},
		{`jsonPayload.connection.dest_port>=443 jsonPayload.connection.dest_port<8080`, "b"},
		{`jsonPayload.bytes_sent>100`, "a"}, // int64 as a string compares as a number
		{`jsonPayload.connection.src_ip!="10.4.0.2"`, "b text"},
		{`NOT jsonPayload.connection.src_ip="10.4.0.2"`, "b text"},
		{`-jsonPayload.connection.src_ip="10.4.0.2"`, "b text"},
		{`jsonPayload.connection.dest_port=(443 OR 8080)`, "a b"},
		{`resource.type="gce_subnetwork" AND resource.labels.subnetwork_name=default`, "a b"},
		{`labels."compute.googleapis.com/resource_name"="gke-node-1"`, "a b"},
		{`jsonPayload.src_gke_details.pod.pod_name:pod`, "a b"},
		{`jsonPayload:"pod-1"`, "a b"}, // has, anywhere under jsonPayload
		{`textPayload:robot`, "text"},  // has is not case sensitive
		{`textPayload=~"^The R.b"`, "text"},
		{`textPayload!~"Robot"`, "a b"},
		{`textPayload:*`, "text"},
		{`severity>=WARNING`, "text"},
		{`severity<ERROR`, "a b"},
		{`timestamp>="2026-12-01T10:30:00Z"`, "b"},
		{`timestamp<"2026-12-01T10:30:00Z" AND logName:vpc_flows`, "a"},
		{`timestamp>=2026-12-01T10:30:00Z`, "b"}, // an unquoted timestamp
		{`robot`, "text"},                        // a global restriction
		{`"10.4.1.5"`, "b"},                      // a quoted one
		{`jsonPayload.connection.src_ip="10.4.0.2" OR jsonPayload.connection.src_ip="10.4.0.3" AND jsonPayload.connection.dest_port=443`, "b"},
		{`(jsonPayload.connection.src_ip="10.4.0.2" OR jsonPayload.connection.src_ip="10.4.0.3") AND NOT jsonPayload.connection.dest_port=443`, "a"},
		{`ip_in_net(jsonPayload.connection.dest_ip, "10.4.1.0/24")`, "b"},
		{`log_id("compute.googleapis.com/vpc_flows")`, "a b"},
		{`jsonPayload.missing="x"`, ""},
	} {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Errorf("%s: %v", tc.filter, err)
			continue
		}
		var got []string
		for _, name := range []string{"a", "b", "text"} {
			if f.Match(all[name]) {
				got = append(got, name)
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: matched [%s], want [%s]", tc.filter, strings.Join(got, " "), tc.want)
		}
	}
}

// As in Cloud Logging, OR binds tighter than AND, and NOT tightest.
func TestFilterPrecedence(t *testing.T) {
	f, err := ParseFilter(`"a" OR NOT "b" AND NOT "c" OR "d"`)
	if err != nil {
		t.Fatal(err)
	}
	want := and{or{global{"a"}, not{global{"b"}}}, or{not{global{"c"}}, global{"d"}}}
	if got, _ := json.Marshal(describe(f.root)); string(got) != mustJSON(describe(want)) {
		t.Errorf("parsed as %s, want %s", got, mustJSON(describe(want)))
	}
}

func describe(n node) any {
	switch n := n.(type) {
	case and:
		out := []any{"AND"}
		for _, c := range n {
			out = append(out, describe(c))
		}
		return out
	case or:
		out := []any{"OR"}
		for _, c := range n {
			out = append(out, describe(c))
		}
		return out
	case not:
		return []any{"NOT", describe(n.n)}
	case global:
		return n.value
	}
	return "?"
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBadFilters(t *testing.T) {
	for _, f := range []string{
		`jsonPayload.x=`,
		`(a`,
		`a AND`,
		`"unterminated`,
		`timestamp>="yesterday"`,
		`severity=LOUD`,
		`textPayload=~"("`,
		`frobnicate(textPayload)`,
		`ip_in_net(jsonPayload.x, "not-a-range")`,
		`a)`,
	} {
		if _, err := ParseFilter(f); err == nil {
			t.Errorf("%s: parsed", f)
		}
	}
}
