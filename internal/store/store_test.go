package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestCommitGuards(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, Write{Key: "a", Value: 1, Revision: Absent}, Write{Key: "b", Value: 2, Revision: Absent}); err != nil {
		t.Fatal(err)
	}
	// A guard that fails rolls back every write of the commit.
	err = s.Commit(ctx, Write{Key: "c", Value: 3, Revision: Absent}, Write{Key: "a", Value: 9, Revision: Absent})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	var v int
	if _, err := s.Get(ctx, "c", &v); !errors.Is(err, ErrNotFound) {
		t.Fatal("half of a failed commit was applied")
	}
	rev, err := s.Get(ctx, "a", &v)
	if err != nil || v != 1 {
		t.Fatal(v, err)
	}
	if err := s.Commit(ctx, Write{Key: "a", Value: 5, Revision: rev + 100}); !errors.Is(err, ErrConflict) {
		t.Fatal("stale revision accepted")
	}
	if err := s.Commit(ctx, Write{Key: "a", Value: 5, Revision: rev}, Write{Key: "b", Revision: Any}); err != nil {
		t.Fatal(err)
	}
	items, _ := s.List(ctx, "")
	if len(items) != 1 || items[0].Key != "a" {
		t.Fatalf("items %v", items)
	}
	s.Close()
	// The embedded etcd keeps its data across a restart.
	s, err = Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, "a", &v); err != nil || v != 5 {
		t.Fatalf("after restart: %v %v", v, err)
	}
}

// A commit of MaxTxnOps guarded writes goes through the embedded etcd
// (a pool of 1,000 nodes records 2,000 addresses at once).
func TestLargeCommit(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writes := make([]Write, MaxTxnOps)
	for i := range writes {
		writes[i] = Write{Key: fmt.Sprintf("allocations/ip/%d", i), Value: struct{}{}, Revision: Absent}
	}
	if err := s.Commit(ctx, writes...); err != nil {
		t.Fatal(err)
	}
	if items, _ := s.List(ctx, "allocations/"); len(items) != MaxTxnOps {
		t.Fatalf("%d keys after the commit, want %d", len(items), MaxTxnOps)
	}
}
