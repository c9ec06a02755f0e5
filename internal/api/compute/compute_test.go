package compute

import (
	"testing"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/api/apierror"
)

// Every honoured field is a real field of the resource.
func TestHonouredFieldsAreRealFields(t *testing.T) {
	for _, l := range []struct {
		fields []string
		msg    any
	}{
		{networkFields, compute.Network{}},
		{subnetFields, compute.Subnetwork{}},
		{patchFields, compute.Subnetwork{}},
	} {
		for _, f := range apierror.Fields(l.fields).Missing(l.msg) {
			t.Errorf("%T has no field %q", l.msg, f)
		}
	}
}
