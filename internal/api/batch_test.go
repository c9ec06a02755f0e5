package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each request of a batch runs through the routes, in order; one outside
// the batch's API is refused on its own.
func TestBatchRunsEachRequest(t *testing.T) {
	var seen []string
	routes := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path)
		io.WriteString(w, `{"ok":true}`)
	})
	body := "--b\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\nDELETE /compute/v1/projects/p/global/firewalls/a HTTP/1.1\r\nHost: x\r\n\r\n\r\n" +
		"--b\r\nContent-Type: application/http\r\nContent-ID: <2>\r\n\r\nDELETE /container/v1/projects/p/x HTTP/1.1\r\nHost: x\r\n\r\n\r\n--b--\r\n"
	req := httptest.NewRequest("POST", "/batch/compute/v1", strings.NewReader(body))
	req.Header.Set("Content-Type", "multipart/mixed; boundary=b")
	rec := httptest.NewRecorder()
	batchHandler(routes, "/compute/v1/").ServeHTTP(rec, req)
	out := rec.Body.String()
	if len(seen) != 1 || seen[0] != "DELETE /compute/v1/projects/p/global/firewalls/a" {
		t.Errorf("requests run: %v", seen)
	}
	if !strings.Contains(out, "response-1") || !strings.Contains(out, `{"ok":true}`) || !strings.Contains(out, "response-2") || !strings.Contains(out, "INVALID_ARGUMENT") {
		t.Errorf("batch answer:\n%s", out)
	}
}
