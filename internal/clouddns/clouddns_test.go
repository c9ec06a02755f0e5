package clouddns

import (
	"context"
	"errors"
	"testing"

	dns "google.golang.org/api/dns/v1"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// A zone's own SOA and NS records go only with the zone.
func TestZoneKeepsItsOwnRecords(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(Config{Store: st, Clock: &clock.Offset{}, NetworkExists: func(context.Context, string, string) bool { return true }})
	ctx := context.Background()
	if _, err := s.CreateZone(ctx, "p", &dns.ManagedZone{Name: "z", DnsName: "example.com.", Description: "d", Visibility: "public"}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"SOA", "NS"} {
		err := s.DeleteRecordSet(ctx, "p", "z", "example.com.", typ)
		var e *status.Error
		if !errors.As(err, &e) || e.Code != status.FailedPrecondition {
			t.Errorf("deleting the zone's %s: %v", typ, err)
		}
	}
	rrs, err := s.ListRecordSets(ctx, "p", "z")
	if err != nil || len(rrs) != 2 {
		t.Fatalf("records after refused deletes: %d %v", len(rrs), err)
	}
	if err := s.DeleteZone(ctx, "p", "z"); err != nil {
		t.Fatalf("the zone with only its own records: %v", err)
	}
}
