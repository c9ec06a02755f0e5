package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

func clustersPath(e *harness.Engine, location string) string {
	return fmt.Sprintf("/v1/projects/%s/locations/%s/clusters", e.Project, location)
}

// errorOf returns the google.rpc.Status of an error answer.
func errorOf(t *testing.T, body map[string]any) (status, message, field, reason string) {
	t.Helper()
	st, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("answer is not a google.rpc.Status: %v", body)
	}
	status, _ = st["status"].(string)
	message, _ = st["message"].(string)
	details, _ := st["details"].([]any)
	for _, d := range details {
		d := d.(map[string]any)
		if v, ok := d["fieldViolations"].([]any); ok && len(v) > 0 {
			field, _ = v[0].(map[string]any)["field"].(string)
		}
		if r, ok := d["reason"].(string); ok {
			reason = r
		}
	}
	return
}

func pool(name string, count int) map[string]any {
	return map[string]any{"name": name, "initialNodeCount": count}
}

// TestBadInputChangesNothing sends each kind of bad request and checks the
// google.rpc.Status it gets, with the field named, and that nothing was
// created.
func TestBadInputChangesNothing(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	tok := e.Token()
	cases := []struct {
		name, location string
		body           any
		code           int
		status, field  string
	}{
		{"invalid cluster name", zone, map[string]any{"cluster": map[string]any{"name": "Bad_Name", "nodePools": []any{pool("p", 1)}}}, 400, "INVALID_ARGUMENT", "cluster.name"},
		{"cluster name too long", zone, map[string]any{"cluster": map[string]any{"name": strings.Repeat("a", 41), "nodePools": []any{pool("p", 1)}}}, 400, "INVALID_ARGUMENT", "cluster.name"},
		{"invalid pool name", zone, map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{pool("-pool", 1)}}}, 400, "INVALID_ARGUMENT", "cluster.nodePools[0].name"},
		{"unknown location", "mars-central1-a", map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{pool("p", 1)}}}, 400, "INVALID_ARGUMENT", "parent"},
		{"negative node count", zone, map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{pool("p", -1)}}}, 400, "INVALID_ARGUMENT", "cluster.nodePools[0].initialNodeCount"},
		{"absurd node count", zone, map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{pool("p", 100000)}}}, 400, "INVALID_ARGUMENT", "cluster.nodePools[0].initialNodeCount"},
		{"no nodes at all", zone, map[string]any{"cluster": map[string]any{"name": "ok"}}, 400, "INVALID_ARGUMENT", "cluster.initialNodeCount"},
		{"unknown machine type", zone, map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{map[string]any{"name": "p", "initialNodeCount": 1, "config": map[string]any{"machineType": "z9-huge"}}}}}, 400, "INVALID_ARGUMENT", "cluster.nodePools[0].config.machineType"},
		{"field not honoured yet", zone, map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{pool("p", 1)}, "privateClusterConfig": map[string]any{"masterGlobalAccessConfig": map[string]any{"enabled": true}}}}, 400, "INVALID_ARGUMENT", "cluster.privateClusterConfig.masterGlobalAccessConfig"},
		{"nested field not honoured yet", zone, map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{map[string]any{"name": "p", "initialNodeCount": 1, "autoscaling": map[string]any{"enabled": true}}}}}, 400, "INVALID_ARGUMENT", "cluster.nodePools[0].autoscaling.enabled"},
		{"field that does not exist", zone, map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{pool("p", 1)}, "flux": 1}}, 400, "INVALID_ARGUMENT", "cluster.flux"},
		{"malformed JSON", zone, `{"cluster": {"name": "ok"`, 400, "INVALID_ARGUMENT", ""},
		{"unknown etcd topology", zone, map[string]any{"cluster": map[string]any{"name": "ok", "resourceLabels": map[string]any{"kubeyard-etcd-topology": "sideways"}, "nodePools": []any{pool("p", 1)}}}, 400, "INVALID_ARGUMENT", "cluster.resourceLabels.kubeyard-etcd-topology"},
		{"wrong version", zone, map[string]any{"cluster": map[string]any{"name": "ok", "initialClusterVersion": "1.20.0", "nodePools": []any{pool("p", 1)}}}, 400, "INVALID_ARGUMENT", "cluster.initialClusterVersion"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.API("POST", clustersPath(e, tc.location), tok, tc.body)
			if code != tc.code {
				t.Fatalf("HTTP %d, want %d: %v", code, tc.code, body)
			}
			status, msg, field, _ := errorOf(t, body)
			if status != tc.status || field != tc.field || msg == "" {
				t.Fatalf("got %s field=%q %q; want %s field=%q", status, field, msg, tc.status, tc.field)
			}
		})
	}
	code, body := e.API("GET", clustersPath(e, "-"), tok, nil)
	if code != 200 || body["clusters"] != nil {
		t.Fatalf("bad requests created something: %d %v", code, body)
	}
	if ops := e.Gcloud("container", "operations", "list", "--format", "value(name)"); strings.TrimSpace(ops) != "" {
		t.Fatalf("bad requests started operations: %s", ops)
	}

	// Through gcloud, the same errors reach the user.
	out, err := e.Run("gcloud", "container", "clusters", "create", "demo", "--zone", "mars-central1-a", "--num-nodes", "1")
	if err == nil || !strings.Contains(out, "mars-central1-a") {
		t.Fatalf("gcloud create in an unknown zone: err=%v\n%s", err, out)
	}
	out, err = e.Run("gcloud", "container", "clusters", "describe", "nope", "--zone", zone)
	if err == nil || !strings.Contains(out, "404") {
		t.Fatalf("describe of a missing cluster: err=%v\n%s", err, out)
	}
}

// TestUnauthenticated: without the engine's token, or with another one,
// every call is 401 UNAUTHENTICATED and nothing changes.
func TestUnauthenticated(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	create := map[string]any{"cluster": map[string]any{"name": "ok", "nodePools": []any{pool("p", 1)}}}
	for _, tok := range []string{"", "ky.not-the-token"} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{"POST", clustersPath(e, zone), create},
			{"GET", clustersPath(e, "-"), nil},
			{"GET", "/v1/projects/" + e.Project + "/services/container.googleapis.com", nil},
			{"POST", "/kubeyard/v1/clock:advance", map[string]any{"duration": "1h"}},
		} {
			code, body := e.API(req.method, req.path, tok, req.body)
			if code != 401 {
				t.Fatalf("%s %s with token %q: HTTP %d %v", req.method, req.path, tok, code, body)
			}
			if status, _, _, _ := errorOf(t, body); status != "UNAUTHENTICATED" {
				t.Fatalf("status %s", status)
			}
		}
	}
	code, body := e.API("GET", clustersPath(e, "-"), e.Token(), nil)
	if code != 200 || body["clusters"] != nil {
		t.Fatalf("unauthenticated calls created something: %v", body)
	}
	code, body = e.API("GET", "/kubeyard/v1/clock", e.Token(), nil)
	if code != 200 || body["offset"] != "0s" {
		t.Fatalf("unauthenticated clock advance moved the clock: %v", body)
	}
}
