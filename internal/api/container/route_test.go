package container

import (
	"testing"

	gke "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/api/codec"
)

func TestParseRoutes(t *testing.T) {
	cases := []struct {
		path, shape, verb, location string
	}{
		{"/v1/projects/p/locations/us-central1-a/clusters", "clusters", "", "us-central1-a"},
		{"/v1/projects/p/locations/-/clusters", "clusters", "", "-"},
		{"/v1/projects/p/zones/us-central1-a/clusters/demo", "clusters/*", "", "us-central1-a"},
		{"/v1/projects/p/locations/us-central1/clusters/demo:setResourceLabels", "clusters/*", "setResourceLabels", "us-central1"},
		{"/v1/projects/p/zones/z/clusters/demo/resourceLabels", "clusters/*", "setResourceLabels", "z"},
		{"/v1/projects/p/locations/l/clusters/demo/nodePools/x:setSize", "clusters/*/nodePools/*", "setSize", "l"},
		{"/v1/projects/p/zones/z/clusters/demo/nodePools/x/setSize", "clusters/*/nodePools/*", "setSize", "z"},
		{"/v1/projects/p/zones/z/operations/op-1:cancel", "operations/*", "cancel", "z"},
		{"/v1/projects/p/zones/z/serverconfig", "serverconfig", "", "z"},
	}
	for _, tc := range cases {
		rt, ok := parse(tc.path)
		if !ok || shape(rt.rest) != tc.shape || rt.verb != tc.verb || rt.location != tc.location || rt.project != "p" {
			t.Errorf("%s: %+v (shape %s)", tc.path, rt, shape(rt.rest))
		}
	}
	for _, bad := range []string{"/v2/projects/p/locations/l/clusters", "/v1/projects/p", "/v1/folders/p/locations/l"} {
		if _, ok := parse(bad); ok {
			t.Errorf("%s parsed", bad)
		}
	}
}

// Every honoured field is a real field of the request message: a typo
// would refuse what gcloud sends.
func TestHonouredFieldsAreRealFields(t *testing.T) {
	lists := []struct {
		fields []string
		msg    any
	}{
		{createClusterFields, gke.CreateClusterRequest{}},
		{createPoolFields, gke.CreateNodePoolRequest{}},
		{setSizeFields, gke.SetNodePoolSizeRequest{}},
		{setLabelsFields, gke.SetLabelsRequest{}},
		{updateFields, gke.UpdateClusterRequest{}},
		{cancelFields, gke.CancelOperationRequest{}},
		{startRotationFields, gke.StartIPRotationRequest{}},
		{maintenanceFields, gke.SetMaintenancePolicyRequest{}},
		{completeRotationFields, gke.CompleteIPRotationRequest{}},
	}
	for _, l := range lists {
		for _, f := range codec.Fields(l.fields).Missing(l.msg) {
			t.Errorf("%T has no field %q", l.msg, f)
		}
	}
}
