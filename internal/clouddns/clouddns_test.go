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

// A change applies whole or not at all: its additions and deletions, in
// one transaction, numbered in the zone's sequence.
func TestChangesApplyWholeOrNotAtAll(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(Config{Store: st, Clock: &clock.Offset{}, NetworkExists: func(context.Context, string, string) bool { return true }})
	ctx := context.Background()
	if _, err := s.CreateZone(ctx, "p", &dns.ManagedZone{Name: "z", DnsName: "googleapis.com.", Description: "d", Visibility: "public"}); err != nil {
		t.Fatal(err)
	}
	a := &dns.ResourceRecordSet{Name: "restricted.googleapis.com.", Type: "A", Ttl: 300, Rrdatas: []string{"199.36.153.4", "199.36.153.5"}}
	cname := &dns.ResourceRecordSet{Name: "*.googleapis.com.", Type: "CNAME", Ttl: 300, Rrdatas: []string{"restricted.googleapis.com."}}
	c, err := s.ApplyChange(ctx, "p", "z", &dns.Change{Additions: []*dns.ResourceRecordSet{a, cname}})
	if err != nil || c.Id != "1" || c.Status != "done" {
		t.Fatalf("first change: %+v %v", c, err)
	}
	count := func() int {
		rrs, err := s.ListRecordSets(ctx, "p", "z")
		if err != nil {
			t.Fatal(err)
		}
		return len(rrs)
	}
	for _, bad := range []struct {
		name   string
		change *dns.Change
		code   status.Code
		field  string
	}{
		{"an addition that exists", &dns.Change{Additions: []*dns.ResourceRecordSet{{Name: "x.googleapis.com.", Type: "A", Ttl: 60, Rrdatas: []string{"10.0.0.1"}}, a}}, status.AlreadyExists, ""},
		{"a deletion that does not match", &dns.Change{Deletions: []*dns.ResourceRecordSet{{Name: a.Name, Type: "A", Ttl: 60, Rrdatas: a.Rrdatas}}}, status.FailedPrecondition, ""},
		{"a deletion of nothing", &dns.Change{Deletions: []*dns.ResourceRecordSet{{Name: "y.googleapis.com.", Type: "A", Ttl: 60, Rrdatas: []string{"10.0.0.1"}}}}, status.NotFound, ""},
		{"an addition outside the zone", &dns.Change{Additions: []*dns.ResourceRecordSet{{Name: "gcr.io.", Type: "A", Ttl: 60, Rrdatas: []string{"10.0.0.1"}}}}, status.InvalidArgument, "change.additions[0].name"},
		{"the zone's NS deleted", &dns.Change{Deletions: []*dns.ResourceRecordSet{{Name: "googleapis.com.", Type: "NS", Ttl: 21600, Rrdatas: []string{"ns-cloud-a1.googledomains.com."}}}}, status.FailedPrecondition, ""},
		{"nothing", &dns.Change{}, status.InvalidArgument, "change"},
	} {
		_, err := s.ApplyChange(ctx, "p", "z", bad.change)
		if st := status.From(err); st == nil || st.Code != bad.code || st.Field != bad.field {
			t.Errorf("%s: %v", bad.name, err)
		}
		if n := count(); n != 4 {
			t.Errorf("%s: %d record sets after a refused change, want 4", bad.name, n)
		}
	}
	// A replacement: the deletion as it is, and the addition.
	a2 := &dns.ResourceRecordSet{Name: a.Name, Type: "A", Ttl: 300, Rrdatas: []string{"199.36.153.6"}}
	if c, err := s.ApplyChange(ctx, "p", "z", &dns.Change{Deletions: []*dns.ResourceRecordSet{a}, Additions: []*dns.ResourceRecordSet{a2}}); err != nil || c.Id != "2" {
		t.Fatalf("replacement: %+v %v", c, err)
	}
	if got, err := s.GetChange(ctx, "p", "z", "2"); err != nil || len(got.Additions) != 1 || got.Additions[0].Rrdatas[0] != "199.36.153.6" {
		t.Fatalf("change 2: %+v %v", got, err)
	}
	if all, err := s.ListChanges(ctx, "p", "z"); err != nil || len(all) != 2 || all[0].Id != "1" {
		t.Fatalf("changes: %v %v", all, err)
	}
	if _, err := s.ApplyChange(ctx, "p", "z", &dns.Change{Deletions: []*dns.ResourceRecordSet{a2, cname}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteZone(ctx, "p", "z"); err != nil {
		t.Fatal(err)
	}
	if left, _ := st.List(ctx, "dns/"); len(left) != 0 {
		t.Errorf("left after the zone went: %d keys", len(left))
	}
}
