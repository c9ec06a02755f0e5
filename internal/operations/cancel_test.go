package operations

import (
	"context"
	"testing"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// A cancel that comes after an operation is launched but before it has
// started (its first write) still ends it CANCELLED: it is never left
// RUNNING with nothing running it (TestOperationKinds hung so, now and
// then, on a loaded machine).
func TestCancelBeforeItStarts(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kinds := Registry{{Type: "WAITS", Run: func(ctx context.Context, _ *Record) error { <-ctx.Done(); return ctx.Err() }}}
	r, err := New(Config{Store: st, Kinds: kinds, Release: func(context.Context, *Record, Kind, error) ([]store.Write, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	op := &Record{Project: "p", Location: "l", Op: &container.Operation{Name: "op-1", OperationType: "WAITS", Status: "PENDING", Progress: &container.OperationProgress{}}}
	if err := st.Commit(ctx, store.Write{Key: op.Key(), Value: op, Revision: store.Absent}); err != nil {
		t.Fatal(err)
	}
	// What Cancel leaves for a launched operation: cancelled in the
	// store, its context done; then the operation's goroutine runs.
	if err := r.Cancel(ctx, "p", "l", "op-1"); err != nil {
		t.Fatal(err)
	}
	opCtx, cancel := context.WithCancel(r.ctx)
	cancel()
	r.execute(opCtx, op, kinds[0])
	got, err := r.Get(ctx, "p", "l", "op-1")
	if err != nil || got.Op.Status != "DONE" || got.Op.Error == nil || got.Op.Error.Code != int64(status.Cancelled) {
		t.Fatalf("cancelled before it started: %+v %v", got.Op, err)
	}
}
