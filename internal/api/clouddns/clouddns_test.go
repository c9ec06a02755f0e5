package clouddns

import (
	"testing"

	dns "google.golang.org/api/dns/v1"
)

// Every honoured field is a real field of the resource.
func TestHonouredFieldsAreRealFields(t *testing.T) {
	for _, f := range zoneFields.Missing(dns.ManagedZone{}) {
		t.Errorf("ManagedZone has no field %q", f)
	}
	for _, f := range rrsetFields.Missing(dns.ResourceRecordSet{}) {
		t.Errorf("ResourceRecordSet has no field %q", f)
	}
}
