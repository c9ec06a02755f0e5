package engine

import (
	"context"
	"net/url"
	"testing"

	"github.com/kubeyard/kubeyard/internal/status"
)

// TestReadKubernetes: the console reads a cluster's resources and logs,
// and nothing that streams or opens a way into a pod.
func TestReadKubernetes(t *testing.T) {
	ctx := context.Background()
	g := newRig(t)
	g.createCluster("c1", 1)
	g.rt.SetKubernetes("c1", "/api/v1/pods", []byte(`{"kind":"PodList"}`))
	got, err := g.e.ReadKubernetes(ctx, project, zone, "c1", "/api/v1/pods", url.Values{"limit": {"10"}})
	if err != nil || string(got) != `{"kind":"PodList"}` {
		t.Fatalf("pods: %s %v", got, err)
	}
	for _, tc := range []struct {
		name, path string
		query      url.Values
		code       status.Code
		field      string
	}{
		{name: "outside the API", path: "/healthz", code: status.InvalidArgument, field: "path"},
		{name: "a path that climbs", path: "/api/v1/../../metrics", code: status.InvalidArgument, field: "path"},
		{name: "exec", path: "/api/v1/namespaces/default/pods/p/exec", code: status.InvalidArgument, field: "path"},
		{name: "a node's proxy", path: "/api/v1/nodes/n/proxy", code: status.InvalidArgument, field: "path"},
		{name: "a watch", path: "/api/v1/pods", query: url.Values{"watch": {"true"}}, code: status.InvalidArgument, field: "watch"},
		{name: "a followed log", path: "/api/v1/namespaces/default/pods/p/log", query: url.Values{"follow": {"true"}}, code: status.InvalidArgument, field: "follow"},
		{name: "what the cluster does not have", path: "/api/v1/namespaces/default/pods/gone", code: status.NotFound},
	} {
		_, err := g.e.ReadKubernetes(ctx, project, zone, "c1", tc.path, tc.query)
		if st := status.From(err); st.Code != tc.code || st.Field != tc.field {
			t.Errorf("%s: %v (field %q), want %v field %q", tc.name, err, st.Field, tc.code, tc.field)
		}
	}
	if _, err := g.e.ReadKubernetes(ctx, project, zone, "c2", "/api/v1/pods", nil); !status.Is(err, status.NotFound) {
		t.Errorf("another cluster: %v", err)
	}
}
