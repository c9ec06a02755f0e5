package bench

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// BenchmarkLoggingRead prints how long `gcloud logging read` takes with a
// filter over 100,000 stored flow-log entries: the engine's part (the
// entries:list call as gcloud sends it, timed at the API) against the
// target of 1 s, and the whole gcloud command beside it; and the
// engine's memory for the entries it holds.
func BenchmarkLoggingRead(b *testing.B) {
	e := harness.Start(b, harness.Options{})
	before := measure([]int{e.PID()})
	const n, batch = 100_000, 1000
	logName := "projects/" + e.Project + "/logs/compute.googleapis.com%2Fvpc_flows"
	begin := time.Now()
	for i := 0; i < n; i += batch {
		var entries []any
		for j := i; j < i+batch; j++ {
			entries = append(entries, map[string]any{
				"logName": logName, "resource": map[string]any{"type": "gce_subnetwork", "labels": map[string]any{"subnetwork_name": "default"}},
				"jsonPayload": map[string]any{
					"connection": map[string]any{"src_ip": fmt.Sprintf("10.%d.%d.%d", j>>16, j>>8&255, j&255), "dest_ip": "10.4.0.3", "src_port": 40000 + j%20000, "dest_port": 8080, "protocol": 6},
					"bytes_sent": fmt.Sprint(j * 10), "packets_sent": "4", "reporter": "SRC",
				},
			})
		}
		if code, out := e.API("POST", "/v2/entries:write", e.Token(), map[string]any{"entries": entries}); code != 200 {
			b.Fatalf("write: HTTP %d %v", code, out)
		}
	}
	after := measure([]int{e.PID()})
	fmt.Printf("wrote %d entries in %.1f s; the engine grew %.0f MiB RSS (%.2f KiB an entry)\n",
		n, time.Since(begin).Seconds(), after.rss-before.rss, (after.rss-before.rss)*1024/n)
	// Matches one entry, so that every entry is looked at.
	filter := fmt.Sprintf(`timestamp>="%s" AND logName="%s" AND jsonPayload.connection.src_ip="10.0.1.7" AND jsonPayload.connection.dest_port=8080`,
		begin.Add(-time.Hour).UTC().Format(time.RFC3339), logName)
	b.ResetTimer()
	for range b.N {
		var api []time.Duration
		for range 5 {
			start := time.Now()
			code, out := e.API("POST", "/v2/entries:list", e.Token(), map[string]any{"resourceNames": []string{"projects/" + e.Project}, "filter": filter, "orderBy": "timestamp desc", "pageSize": 1000})
			api = append(api, time.Since(start))
			if entries, _ := out["entries"].([]any); code != 200 || len(entries) != 1 {
				b.Fatalf("list: HTTP %d, %d entries", code, len(entries))
			}
		}
		start := time.Now()
		cmd := exec.Command("gcloud", "logging", "read", "--format=json",
			`logName="`+logName+`" AND jsonPayload.connection.src_ip="10.0.1.7" AND jsonPayload.connection.dest_port=8080`)
		cmd.Env = e.Env()
		out, err := cmd.Output()
		whole := time.Since(start)
		var entries []json.RawMessage
		if err != nil || json.Unmarshal(out, &entries) != nil || len(entries) != 1 {
			b.Fatalf("gcloud logging read: %v, %d entries: %s", err, len(entries), strings.TrimSpace(string(out)))
		}
		p50 := percentile(api, 0.5)
		fmt.Printf("logging read over %d entries, a filter matching one: entries:list p50 %.0f ms (target 1 s: %.2fx); the whole gcloud logging read %.2f s\n",
			n, float64(p50.Milliseconds()), p50.Seconds(), whole.Seconds())
		b.ReportMetric(float64(p50.Milliseconds()), "list-ms")
	}
}
