package operations

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
)

// A panic inside an operation fails that operation with INTERNAL; the
// engine goes on.
func TestPanicIsAnError(t *testing.T) {
	err := recovered(slog.New(slog.DiscardHandler), "op-1", func() error { panic("boom") })
	if st := status.From(err); st.Code != status.Internal || !strings.Contains(st.Message, "boom") {
		t.Fatalf("got %v, want INTERNAL naming the panic", err)
	}
	if err := recovered(slog.New(slog.DiscardHandler), "op-2", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryCheck(t *testing.T) {
	run := func(context.Context, *Record) error { return nil }
	for _, c := range []struct {
		name string
		g    Registry
		want string // in the error; "" when fine
	}{
		{"fine", Registry{{Type: "A", Run: run}, {Type: "A", Action: "x", Run: run}, {Type: "B", Blocks: BlocksNothing}}, ""},
		{"twice", Registry{{Type: "A", Run: run}, {Type: "A", Run: run}}, "twice"},
		{"blocks but runs nothing", Registry{{Type: "A"}}, "runs nothing"},
		{"born DONE with a run", Registry{{Type: "A", Run: run, Blocks: BlocksNothing}}, "born DONE"},
		{"no type", Registry{{Run: run}}, "without a type"},
	} {
		err := c.g.check()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := (Registry{{Type: "A", Run: run}}).lookup(&Record{Op: &container.Operation{OperationType: "A"}, Action: "y"}); err == nil {
		t.Error("an unknown kind was found")
	}
}

// The end of an operation says how it ended, as GKE does: a failure's
// code and message; CANCELLED when it was cancelled, whatever it failed
// with.
func TestEnd(t *testing.T) {
	r := &Runner{cfg: Config{Clock: fixedClock{}}}
	for _, c := range []struct {
		err       error
		cancelled bool
		code      int64
		msg       string
	}{
		{status.Errorf(status.FailedPrecondition, "Node pool %q requires recreation.", "p"), false, 9, `Node pool "p" requires recreation.`},
		{errors.New("disk full"), false, 13, "disk full"},
		{context.Canceled, false, 1, "Operation was cancelled."},
		{errors.New("stopped half way"), true, 1, "Operation was cancelled."},
	} {
		op := newRecord()
		op.Cancelled = c.cancelled
		r.end(op, c.err)
		if op.Op.Status != "DONE" || op.Op.Error.Code != c.code || op.Op.Error.Message != c.msg || op.Op.StatusMessage != c.msg {
			t.Errorf("%v: %+v", c.err, op.Op.Error)
		}
	}
	op := newRecord()
	r.end(op, nil)
	if op.Op.Error != nil || op.Op.Progress.Stages[0].Status != "DONE" || op.Op.EndTime == "" {
		t.Errorf("a success: %+v", op.Op)
	}
}

type fixedClock struct{}

func (fixedClock) Now() time.Time                  { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
func (fixedClock) Since(t time.Time) time.Duration { return fixedClock{}.Now().Sub(t) }

func newRecord() *Record {
	return &Record{Op: &container.Operation{Name: "operation-1", Status: "RUNNING",
		Progress: &container.OperationProgress{Status: "RUNNING", Stages: []*container.OperationProgress{{Name: "one", Status: "RUNNING"}}}}}
}
