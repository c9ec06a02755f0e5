package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestLogging: gcloud logging write, read (with a filter, newest first,
// --limit, gcloud's own freshness clause), logs list and logs delete
// against the engine's Cloud Logging; a bad filter is INVALID_ARGUMENT
// naming it; entries survive an engine crash.
func TestLogging(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("logging", "write", "app-log", "the first", "--severity=INFO")
	e.Gcloud("logging", "write", "app-log", "the second", "--severity=ERROR")
	e.Gcloud("logging", "write", "app-log", `{"user": "ana", "status": 503}`, "--payload-type=json", "--severity=WARNING")
	e.Gcloud("logging", "write", "other-log", "elsewhere")

	read := func(args ...string) []map[string]any {
		t.Helper()
		out := e.Gcloud(append([]string{"logging", "read", "--format=json"}, args...)...)
		var entries []map[string]any
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			t.Fatalf("logging read %v: %v\n%s", args, err, out)
		}
		return entries
	}
	payloads := func(entries []map[string]any) string {
		var out []string
		for _, en := range entries {
			if p, ok := en["textPayload"].(string); ok {
				out = append(out, p)
			} else {
				b, _ := json.Marshal(en["jsonPayload"])
				out = append(out, string(b))
			}
		}
		return strings.Join(out, "|")
	}
	project := e.Project
	logName := "projects/" + project + "/logs/app-log"
	if got := payloads(read(`logName="` + logName + `"`)); got != `{"status":503,"user":"ana"}|the second|the first` {
		t.Errorf("the log, newest first: %s", got)
	}
	if got := payloads(read(`logName="`+logName+`"`, "--order=asc", "--limit=2")); got != "the first|the second" {
		t.Errorf("oldest first, two: %s", got)
	}
	if got := payloads(read(`severity>=WARNING`)); got != `{"status":503,"user":"ana"}|the second` {
		t.Errorf("severity>=WARNING: %s", got)
	}
	if got := payloads(read(`jsonPayload.status>=500 AND jsonPayload.user:AN`)); got != `{"status":503,"user":"ana"}` {
		t.Errorf("by JSON fields: %s", got)
	}
	if got := payloads(read(`elsewhere OR "the first"`)); got != "elsewhere|the first" {
		t.Errorf("global restrictions: %s", got)
	}
	if out := e.Gcloud("logging", "logs", "list"); !strings.Contains(out, logName) || !strings.Contains(out, "other-log") {
		t.Errorf("logs list:\n%s", out)
	}
	out, err := e.Run("gcloud", "logging", "read", `jsonPayload.status>=`)
	if err == nil || !strings.Contains(out, "INVALID_ARGUMENT") && !strings.Contains(out, "filter") {
		t.Errorf("a bad filter: %v\n%s", err, out)
	}

	// Beside the image store's /v2/, and behind the token as the rest.
	if code, _ := e.API("POST", "/v2/entries:list", "not-the-token", map[string]any{"resourceNames": []string{"projects/" + project}}); code != 401 {
		t.Errorf("entries:list without the token: HTTP %d", code)
	}

	// Kept in the engine's store: a crash loses none.
	e.Kill()
	e.Restart()
	if got := payloads(read(`logName="` + logName + `"`)); got != `{"status":503,"user":"ana"}|the second|the first` {
		t.Errorf("after a restart: %s", got)
	}
	e.Gcloud("logging", "logs", "delete", "other-log", "--quiet")
	if got := payloads(read(`logName:"other-log"`)); got != "" {
		t.Errorf("a deleted log's entries: %s", got)
	}
}
