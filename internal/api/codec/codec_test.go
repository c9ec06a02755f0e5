package codec

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cloud.google.com/go/container/apiv1/containerpb"

	"github.com/kubeyard/kubeyard/internal/status"
)

func TestDecodeRefusesFieldsNotHonoured(t *testing.T) {
	allowed := Fields{"cluster.name", "cluster.nodePools[].name", "cluster.resourceLabels.*", "parent"}
	cases := []struct {
		body      string
		wantField string // "" means accepted
	}{
		{`{"cluster":{"name":"a"}}`, ""},
		{`{"cluster":{"name":"a","nodePools":[{"name":"p"}]}}`, ""},
		{`{"cluster":{"resourceLabels":{"anything":"goes"}}}`, ""},
		{`{"cluster":{"name":"a","flux":1}}`, "cluster.flux"},
		{`{"cluster":{"nodePools":[{"name":"p","autoscaling":{"enabled":true}}]}}`, "cluster.nodePools[0].autoscaling"},
		{`{"cluster":{"privateClusterConfig":{"enablePrivateNodes":true}}}`, "cluster.privateClusterConfig"},
		{`{"other":1}`, "other"},
		{``, ""},
	}
	for _, tc := range cases {
		var v map[string]any
		err := Decode(httptest.NewRequest("POST", "/", strings.NewReader(tc.body)), allowed, &v)
		if tc.wantField == "" {
			if err != nil {
				t.Errorf("%s: unexpected %v", tc.body, err)
			}
			continue
		}
		apiErr, ok := err.(*status.Error)
		if !ok || apiErr.Code != status.InvalidArgument {
			t.Fatalf("%s: got %v, want INVALID_ARGUMENT", tc.body, err)
		}
		if apiErr.Field != tc.wantField {
			t.Errorf("%s: field %q, want %q", tc.body, apiErr.Field, tc.wantField)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, body := range []string{`{"a":`, `[1,2]`, `"x"`} {
		var v map[string]any
		err := Decode(httptest.NewRequest("POST", "/", strings.NewReader(body)), Fields{"a"}, &v)
		if e, ok := err.(*status.Error); !ok || e.Code != status.InvalidArgument || e.Code.HTTPStatus() != 400 {
			t.Errorf("%q: got %v", body, err)
		}
	}
}

func TestWriteIsGoogleRPCStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, status.Errorf(status.FailedPrecondition, "Cluster is running incompatible operation %s.", "op-1").
		WithReason("container.googleapis.com", "CLUSTER_ALREADY_HAS_OPERATION", nil))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("code %d", rec.Code)
	}
	var body struct {
		Error struct {
			Code    int
			Status  string
			Message string
			Details []map[string]any
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	e := body.Error
	if e.Code != 400 || e.Status != "FAILED_PRECONDITION" || !strings.Contains(e.Message, "op-1") ||
		e.Details[0]["@type"] != "type.googleapis.com/google.rpc.ErrorInfo" || e.Details[0]["reason"] != "CLUSTER_ALREADY_HAS_OPERATION" {
		t.Fatalf("body %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	Write(rec, http.ErrBodyNotAllowed)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"INTERNAL"`) {
		t.Fatalf("plain errors become INTERNAL: %d %s", rec.Code, rec.Body)
	}
}

// The mux's own 404 and 405 answer as google.rpc.Status; a handler's
// answers pass untouched.
func TestStatusErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/things", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, map[string]int{"n": 1}) })
	mux.HandleFunc("GET /v1/gone", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	h := StatusErrors(mux)
	for _, c := range []struct {
		method, path string
		code         int
		status       string
	}{
		{"GET", "/v2/entries:list", 404, "NOT_FOUND"},
		{"POST", "/v1/things", 405, "UNIMPLEMENTED"},
		{"GET", "/v1/gone", 404, "NOT_FOUND"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		var body struct {
			Error struct {
				Code    int
				Status  string
				Message string
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != c.code || body.Error.Code != c.code || body.Error.Status != c.status || !strings.Contains(body.Error.Message, c.path) {
			t.Errorf("%s %s: HTTP %d %q (%v)", c.method, c.path, rec.Code, rec.Body, err)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/things", nil))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"n":1}` {
		t.Errorf("a handler's answer changed: %d %s", rec.Code, rec.Body)
	}
}

// A field the engine does not carry out is accepted at a value that means
// the same as leaving it out (a listed default, or an empty object or
// list), and refused at any other.
func TestDecodeAcceptsDefaults(t *testing.T) {
	fields := Fields{"cluster.name", `cluster.legacyAbac.enabled=false`, `cluster.shieldedNodes.enabled=true`,
		`cluster.ipAllocationPolicy.stackType="IPV4"`, `cluster.ipAllocationPolicy.stackType=""`, "cluster.ipAllocationPolicy.useIpAliases"}
	for _, c := range []struct {
		body, field string // field: "" when accepted
	}{
		{`{"cluster":{"name":"a","legacyAbac":{"enabled":false},"shieldedNodes":{"enabled":true}}}`, ""},
		{`{"cluster":{"ipAllocationPolicy":{"stackType":"IPV4","useIpAliases":true}}}`, ""},
		{`{"cluster":{"ipAllocationPolicy":{"stackType":""}}}`, ""},
		{`{"cluster":{"maintenancePolicy":{"window":{}},"networkPolicy":{},"notificationConfig":{"pubsub":{}},"tags":[]}}`, ""},
		{`{"cluster":{"legacyAbac":{"enabled":true}}}`, "cluster.legacyAbac.enabled"},
		{`{"cluster":{"shieldedNodes":{"enabled":false}}}`, "cluster.shieldedNodes.enabled"},
		{`{"cluster":{"ipAllocationPolicy":{"stackType":"IPV4_IPV6"}}}`, "cluster.ipAllocationPolicy.stackType"},
		{`{"cluster":{"notificationConfig":{"pubsub":{"enabled":true}}}}`, "cluster.notificationConfig"},
	} {
		var v map[string]any
		err := Decode(httptest.NewRequest("POST", "/", strings.NewReader(c.body)), fields, &v)
		if st := status.From(err); (c.field == "") != (err == nil) || (err != nil && (st.Code != status.InvalidArgument || st.Field != c.field)) {
			t.Errorf("%s: %v, want field %q", c.body, err, c.field)
		}
	}
}

// Enums given as numbers, as the clients generated from the protos send
// them, are read as their names, in nested messages and lists too.
func TestDecodeMessageReadsEnumNumbers(t *testing.T) {
	body := `{"cluster":{"name":"a","ipAllocationPolicy":{"stackType":1},"releaseChannel":{"channel":2},"nodePools":[{"name":"p","upgradeSettings":{"strategy":3}}]}}`
	var v map[string]any
	fields := Fields{"cluster.name", `cluster.ipAllocationPolicy.stackType="IPV4"`, `cluster.releaseChannel.channel="REGULAR"`, "cluster.nodePools[].name", `cluster.nodePools[].upgradeSettings.strategy="SURGE"`}
	md := (&containerpb.CreateClusterRequest{}).ProtoReflect().Descriptor()
	if err := DecodeMessage(httptest.NewRequest("POST", "/", strings.NewReader(body)), fields, md, &v); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(v["cluster"].(map[string]any)["ipAllocationPolicy"]); got != "map[stackType:IPV4]" {
		t.Errorf("stackType: %s", got)
	}
}
