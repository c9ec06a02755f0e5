package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apilogging "github.com/kubeyard/kubeyard/internal/api/logging"
	"github.com/kubeyard/kubeyard/internal/logging"
	"github.com/kubeyard/kubeyard/internal/store"
)

func server(t *testing.T) (*httptest.Server, *logging.Store) {
	t.Helper()
	kv, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	s, err := logging.Open(context.Background(), logging.Config{KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	apilogging.Register(mux, s)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, s
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// What gcloud logging write sends comes back through what gcloud logging
// read sends.
func TestWriteThenRead(t *testing.T) {
	srv, _ := server(t)
	for _, body := range []string{
		`{"entries": [{"logName": "projects/demo/logs/my-log", "resource": {"type": "global"}, "severity": "ERROR", "textPayload": "hello there"}]}`,
		`{"entries": [{"jsonPayload": {"a": 1, "nested": {"b": "x"}}, "logName": "projects/demo/logs/my-log", "resource": {"type": "global"}, "severity": "DEFAULT"}]}`,
	} {
		if code, out := call(t, srv, "POST", "/v2/entries:write?alt=json", body); code != 200 {
			t.Fatalf("write: %d %v", code, out)
		}
	}
	code, out := call(t, srv, "POST", "/v2/entries:list?alt=json",
		`{"filter": "timestamp>=\"2000-01-01T00:00:00Z\" AND severity>=ERROR", "orderBy": "timestamp desc", "pageSize": 1000, "resourceNames": ["projects/demo"]}`)
	entries, _ := out["entries"].([]any)
	if code != 200 || len(entries) != 1 || entries[0].(map[string]any)["textPayload"] != "hello there" {
		t.Fatalf("read: %d %v", code, out)
	}
	e := entries[0].(map[string]any)
	for _, f := range []string{"insertId", "timestamp", "receiveTimestamp"} {
		if e[f] == nil || e[f] == "" {
			t.Errorf("the entry has no %s: %v", f, e)
		}
	}
	_, out = call(t, srv, "POST", "/v2/entries:list", `{"filter": "jsonPayload.nested.b=x", "resourceNames": ["projects/demo"]}`)
	if entries, _ := out["entries"].([]any); len(entries) != 1 {
		t.Errorf("by a JSON field: %v", out)
	}
	if _, out := call(t, srv, "GET", "/v2/projects/demo/logs?alt=json", ""); len(out["logNames"].([]any)) != 1 {
		t.Errorf("logs: %v", out)
	}
	if code, out := call(t, srv, "DELETE", "/v2/projects/demo/logs/my-log", ""); code != 200 {
		t.Errorf("delete: %d %v", code, out)
	}
	if _, out := call(t, srv, "POST", "/v2/entries:list", `{"resourceNames": ["projects/demo"]}`); out["entries"] != nil {
		t.Errorf("after the log's deletion: %v", out)
	}
	if code, _ := call(t, srv, "DELETE", "/v2/projects/demo/logs/my-log", ""); code != 404 {
		t.Errorf("deleting a log with no entries: %d", code)
	}
}

// Bad requests are INVALID_ARGUMENT naming the field, and write nothing.
func TestBadRequests(t *testing.T) {
	srv, s := server(t)
	for _, tc := range []struct{ path, body, field string }{
		{"/v2/entries:list", `{"filter": "a AND", "resourceNames": ["projects/demo"]}`, "filter"},
		{"/v2/entries:list", `{"filter": "severity=LOUD", "resourceNames": ["projects/demo"]}`, "filter"},
		{"/v2/entries:list", `{"orderBy": "severity", "resourceNames": ["projects/demo"]}`, "orderBy"},
		{"/v2/entries:list", `{"resourceNames": ["folders/123"]}`, "resourceNames"},
		{"/v2/entries:list", `{}`, "resourceNames"},
		{"/v2/entries:list", `{"resourceNames": ["projects/demo"], "pageToken": "not-ours"}`, "pageToken"},
		{"/v2/entries:list", `{"resourceNames": ["projects/demo"], "summaryFields": [{"field": "x"}]}`, "summaryFields"},
		{"/v2/entries:write", `{"entries": []}`, "entries"},
		{"/v2/entries:write", `{"entries": [{"logName": "my-log", "resource": {"type": "global"}, "textPayload": "x"}]}`, "entries[0].logName"},
		{"/v2/entries:write", `{"entries": [{"logName": "projects/demo/logs/a", "textPayload": "x"}]}`, "entries[0].resource"},
		{"/v2/entries:write", `{"entries": [{"logName": "projects/demo/logs/a", "resource": {"type": "global"}, "severity": "LOUD"}]}`, "entries[0].severity"},
		{"/v2/entries:write", `{"entries": [{"logName": "projects/demo/logs/a", "resource": {"type": "global"}, "protoPayload": {"@type": "x"}}]}`, "entries[0].protoPayload"},
	} {
		code, out := call(t, srv, "POST", tc.path, tc.body)
		msg, _ := json.Marshal(out)
		if code != 400 || !strings.Contains(string(msg), tc.field) {
			t.Errorf("%s %s: %d %s (want 400 naming %s)", tc.path, tc.body, code, msg, tc.field)
		}
	}
	if logs := s.Logs("demo"); len(logs) != 0 {
		t.Errorf("bad writes wrote %v", logs)
	}
}
