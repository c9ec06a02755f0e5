package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func insertIDs(t *testing.T, raw []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, r := range raw {
		var e Entry
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.InsertID)
	}
	return out
}

// Entries are listed in time order either way, page by page, by project,
// and are there again after a restart.
func TestWriteListPagesAndRestart(t *testing.T) {
	ctx := context.Background()
	kv := openStore(t)
	clk := &clock.Offset{}
	s, err := Open(ctx, Config{KV: kv, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now().Add(-time.Hour)
	var entries []Entry
	for i := range 150 { // more than one transaction's worth
		entries = append(entries, Entry{LogName: "projects/demo/logs/app", Timestamp: t0.Add(time.Duration(i) * time.Second), InsertID: fmt.Sprintf("e%03d", i), TextPayload: fmt.Sprint(i)})
	}
	// Written out of order: listed in time order.
	if err := s.Write(ctx, "demo", entries[100:]...); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, "demo", entries[:100]...); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, "other", Entry{LogName: "projects/other/logs/app", InsertID: "theirs"}); err != nil {
		t.Fatal(err)
	}
	for _, reopened := range []bool{false, true} {
		if reopened {
			if s, err = Open(ctx, Config{KV: kv, Clock: clk}); err != nil {
				t.Fatal(err)
			}
		}
		for _, desc := range []bool{false, true} {
			var got []string
			token := ""
			for pages := 0; ; pages++ {
				page, next, err := s.List(Query{Projects: []string{"demo"}, Filter: &Filter{}, Descending: desc, PageSize: 40, PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, insertIDs(t, page)...)
				if token = next; token == "" {
					if pages != 3 {
						t.Errorf("%d pages of 40 for 150 entries", pages+1)
					}
					break
				}
			}
			if len(got) != 150 {
				t.Fatalf("reopened %v, descending %v: listed %d entries", reopened, desc, len(got))
			}
			for i, id := range got {
				want := i
				if desc {
					want = 149 - i
				}
				if id != fmt.Sprintf("e%03d", want) {
					t.Fatalf("reopened %v, descending %v: entry %d is %s", reopened, desc, i, id)
				}
			}
		}
	}
	if logs := s.Logs("demo"); len(logs) != 1 || logs[0] != "projects/demo/logs/app" {
		t.Errorf("logs: %v", logs)
	}
	if _, _, err := s.List(Query{Projects: []string{"demo"}, PageSize: 10, PageToken: "%%%"}); err != ErrBadPageToken {
		t.Errorf("a bad page token: %v", err)
	}
}

// Entries older than the retention go, and the oldest beyond the most
// kept, from memory and from the store.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	kv := openStore(t)
	clk := &clock.Offset{}
	s, err := Open(ctx, Config{KV: kv, Clock: clk, Retention: time.Hour, MaxEntries: 5})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	for i := range 8 {
		if err := s.Write(ctx, "demo", Entry{LogName: "projects/demo/logs/app", InsertID: fmt.Sprint(i), Timestamp: now.Add(time.Duration(i-8) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write(ctx, "demo", Entry{LogName: "projects/demo/logs/old", InsertID: "old", Timestamp: now.Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	page, _, _ := s.List(Query{Projects: []string{"demo"}, Filter: &Filter{}, PageSize: 100})
	if got := insertIDs(t, page); fmt.Sprint(got) != "[3 4 5 6 7]" {
		t.Errorf("kept %v", got)
	}
	items, _ := kv.List(ctx, prefix)
	if len(items) != 5 {
		t.Errorf("%d entries in the store", len(items))
	}
	if logs := s.Logs("demo"); fmt.Sprint(logs) != "[projects/demo/logs/app]" {
		t.Errorf("logs: %v", logs)
	}
}
