package operations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"runtime/debug"
	"sync"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/poll"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// Record is an operation as the engine stores it: the API object users
// see, the cluster it works on, and the arguments and progress of its run.
type Record struct {
	Op          *container.Operation `json:"operation"`
	Project     string               `json:"project"`
	Location    string               `json:"location"`
	ClusterName string               `json:"cluster"`
	// Pool and Size are the arguments of node pool operations.
	Pool      string `json:"pool,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
	// Step is how many steps of a multi-step operation are done.
	Step int `json:"step,omitempty"`
	// Action says what an UPDATE_CLUSTER operation does (Kind.Action).
	Action string `json:"action,omitempty"`
	// Replace names the nodes an UPGRADE_NODES operation recreates.
	Replace []string `json:"replace,omitempty"`
	// Resumed marks an operation an earlier engine left unfinished: this
	// engine has not brought its cluster up yet.
	Resumed bool `json:"-"`
}

// Key is the operation's key in the store.
func (o *Record) Key() string { return Key(o.Project, o.Location, o.Op.Name) }

// Key is the store key of an operation.
func Key(project, location, name string) string {
	return path.Join("operations", project, location, name)
}

// URLName is an operation's resource name, as errors quote it.
func URLName(project, location, name string) string {
	return fmt.Sprintf("projects/%s/locations/%s/operations/%s", project, location, name)
}

// Config configures a Runner.
type Config struct {
	Store  store.KV
	Clock  clock.Clock
	Logger *slog.Logger
	Kinds  Registry
	// Release returns the writes that free the operation's cluster as the
	// operation ends, failed with err (nil: succeeded): clearing what
	// marks it busy and applying kind.OnFailure. It reads the cluster
	// afresh each time, guarding its writes by revision; nil writes when
	// the cluster is gone or not held by op.
	Release func(ctx context.Context, op *Record, kind Kind, err error) ([]store.Write, error)
	// Ended, if set, hears of every operation that ended here.
	Ended func(op *Record)
}

// Runner runs operations.
type Runner struct {
	cfg    Config
	ctx    context.Context // ends when the runner closes
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]context.CancelFunc // by operation key
}

// New checks the registry and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Kinds.check(); err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Release == nil {
		return nil, errors.New("operations: a store and a release function are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = &clock.Offset{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, running: map[string]context.CancelFunc{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Close stops every operation running here and waits until they have
// returned. They stay RUNNING in the store, for the next runner to resume.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
}

// Start stores op, PENDING, atomically with writes (the change that asked
// for it: the cluster marked busy, what it allocates), and runs it in the
// background. A kind that blocks nothing is stored DONE and not run. A
// failed guard is store.ErrConflict, for the caller to explain.
func (r *Runner) Start(ctx context.Context, op *Record, writes ...store.Write) error {
	kind, err := r.cfg.Kinds.lookup(op)
	if err != nil {
		return err
	}
	if kind.Blocks == BlocksNothing {
		r.end(op, nil)
	}
	if err := r.cfg.Store.Commit(ctx, append([]store.Write{{Key: op.Key(), Value: op, Revision: store.Absent}}, writes...)...); err != nil {
		return err
	}
	if kind.Blocks != BlocksNothing {
		r.launch(op, kind)
	}
	return nil
}

// Record stores op as DONE with err, never run, atomically with writes:
// an operation the engine started by itself that could not go on.
func (r *Runner) Record(ctx context.Context, op *Record, err error, writes ...store.Write) error {
	r.end(op, err)
	return r.cfg.Store.Commit(ctx, append([]store.Write{{Key: op.Key(), Value: op, Revision: store.Absent}}, writes...)...)
}

// Resume runs on every operation an earlier engine left unfinished, and
// returns them.
func (r *Runner) Resume(ctx context.Context) ([]*Record, error) {
	ops, err := store.ListAs[Record](ctx, r.cfg.Store, "operations/")
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, op := range ops {
		if op.Op.Status == "DONE" {
			continue
		}
		kind, err := r.cfg.Kinds.lookup(op)
		if err != nil {
			r.cfg.Logger.Error("resume operation", "op", op.Op.Name, "err", err)
			continue
		}
		op.Resumed = true
		r.launch(op, kind)
		out = append(out, op)
	}
	return out, nil
}

// launch runs op in the background until it is DONE.
func (r *Runner) launch(op *Record, kind Kind) {
	ctx, cancel := context.WithCancel(r.ctx)
	r.mu.Lock()
	r.running[op.Key()] = cancel
	r.mu.Unlock()
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			delete(r.running, op.Key())
			r.mu.Unlock()
			cancel()
		}()
		r.execute(ctx, op, kind)
	})
}

// execute carries out op and records its end. A runner that closes midway
// leaves it RUNNING, and the next one runs it again from the start.
func (r *Runner) execute(ctx context.Context, op *Record, kind Kind) {
	op.Op.Status = "RUNNING"
	op.Op.Progress.Status = "RUNNING"
	// Not with ctx: a cancel that comes before this write (launched, not
	// yet started) would fail it and leave the operation RUNNING with
	// nothing running it; with it written, Run sees the cancel and the
	// operation ends CANCELLED.
	if err := r.Save(context.WithoutCancel(ctx), op); err != nil {
		r.cfg.Logger.Error("operation", "op", op.Op.Name, "err", err)
		return
	}
	r.cfg.Logger.Info("operation started", "op", op.Op.Name, "type", op.Op.OperationType, "cluster", op.ClusterName)
	err := recovered(r.cfg.Logger, op.Op.Name, func() error { return kind.Run(ctx, op) })
	if r.ctx.Err() != nil {
		return // the engine is stopping: the next one resumes the operation
	}
	if err == nil && ctx.Err() != nil {
		err = context.Canceled
	}
	r.finish(op, kind, err)
}

// recovered runs f, turning a panic into an INTERNAL error (with its stack
// in the log): a bug in one operation fails that operation, not the
// engine and every other cluster's work with it.
func recovered(log *slog.Logger, name string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("operation panicked", "op", name, "panic", p, "stack", string(debug.Stack()))
			err = status.Errorf(status.Internal, "Internal error in operation %s: %v", name, p)
		}
	}()
	return f()
}

// Stage records progress: a named step, RUNNING, after the ones before it
// (now DONE).
func (r *Runner) Stage(ctx context.Context, op *Record, name string) {
	for _, s := range op.Op.Progress.Stages {
		if s.Status == "RUNNING" {
			s.Status = "DONE"
		}
	}
	op.Op.Progress.Stages = append(op.Op.Progress.Stages, &container.OperationProgress{Name: name, Status: "RUNNING"})
	if err := r.Save(ctx, op); err != nil {
		r.cfg.Logger.Warn("save progress", "op", op.Op.Name, "err", err)
	}
}

// Step records that one more step of op is done (op.Step), so that a
// resumed run goes on after it.
func (r *Runner) Step(ctx context.Context, op *Record) error {
	op.Step++
	return r.Save(ctx, op)
}

// Save stores op as it is now, keeping a cancellation asked for meanwhile.
func (r *Runner) Save(ctx context.Context, op *Record) error {
	var cur Record
	if _, err := r.cfg.Store.Get(ctx, op.Key(), &cur); err == nil && cur.Cancelled {
		op.Cancelled = true
	}
	return r.cfg.Store.Commit(ctx, store.Write{Key: op.Key(), Value: op, Revision: store.Any})
}

// end marks op DONE, with runErr as its error if it failed.
func (r *Runner) end(op *Record, runErr error) {
	op.Op.Status = "DONE"
	op.Op.EndTime = r.cfg.Clock.Now().UTC().Format(time.RFC3339Nano)
	op.Op.Progress.Status = "DONE"
	for _, s := range op.Op.Progress.Stages {
		if s.Status == "RUNNING" {
			s.Status = "DONE"
		}
	}
	if runErr == nil {
		return
	}
	st := status.From(runErr)
	code, msg := st.Code, st.Message
	if op.Cancelled || errors.Is(runErr, context.Canceled) {
		code, msg = status.Cancelled, "Operation was cancelled."
	}
	op.Op.Error = &container.Status{Code: int64(code), Message: msg}
	op.Op.StatusMessage = msg
}

// finish records op's end and frees its cluster, in one transaction.
func (r *Runner) finish(op *Record, kind Kind, runErr error) {
	ctx := context.Background()
	var cur Record
	if _, err := r.cfg.Store.Get(ctx, op.Key(), &cur); err == nil && cur.Cancelled {
		op.Cancelled = true
	}
	r.end(op, runErr)
	if runErr != nil {
		r.cfg.Logger.Warn("operation failed", "op", op.Op.Name, "err", runErr)
	} else {
		r.cfg.Logger.Info("operation done", "op", op.Op.Name, "type", op.Op.OperationType)
	}
	for {
		release, err := r.cfg.Release(ctx, op, kind, runErr)
		if err == nil {
			err = r.cfg.Store.Commit(ctx, append([]store.Write{{Key: op.Key(), Value: op, Revision: store.Any}}, release...)...)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			r.cfg.Logger.Error("finish operation", "op", op.Op.Name, "err", err)
			return
		}
		break
	}
	if r.cfg.Ended != nil {
		r.cfg.Ended(op)
	}
}

// Get returns one operation.
func (r *Runner) Get(ctx context.Context, project, location, name string) (*Record, error) {
	var op Record
	if _, err := r.cfg.Store.Get(ctx, Key(project, location, name), &op); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(status.NotFound, "Operation %q not found.", URLName(project, location, name))
		}
		return nil, err
	}
	return &op, nil
}

// List returns the operations whose key starts with prefix ("operations/P/L/").
func (r *Runner) List(ctx context.Context, prefix string) ([]*Record, error) {
	return store.ListAs[Record](ctx, r.cfg.Store, prefix)
}

// Cancel stops a running operation: it ends DONE with a CANCELLED error,
// and what it had done so far stays (as in GKE). A kind that cannot be
// cancelled is refused, saying why.
func (r *Runner) Cancel(ctx context.Context, project, location, name string) error {
	key := Key(project, location, name)
	for {
		var op Record
		rev, err := r.cfg.Store.Get(ctx, key, &op)
		if errors.Is(err, store.ErrNotFound) {
			return status.Errorf(status.NotFound, "Operation %q not found.", URLName(project, location, name))
		}
		if err != nil {
			return err
		}
		if op.Op.Status == "DONE" {
			return status.Errorf(status.FailedPrecondition, "Operation %s is already done.", name)
		}
		kind, err := r.cfg.Kinds.lookup(&op)
		if err != nil {
			return err
		}
		if kind.NotCancellable != "" {
			return status.Errorf(status.FailedPrecondition, "Operation %s %s", name, kind.NotCancellable)
		}
		op.Cancelled = true
		err = r.cfg.Store.Commit(ctx, store.Write{Key: key, Value: &op, Revision: rev})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	r.mu.Lock()
	cancel := r.running[key]
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return nil
}

// Wait blocks until the operation is DONE or ctx ends.
func (r *Runner) Wait(ctx context.Context, project, location, name string) (*Record, error) {
	for {
		op, err := r.Get(ctx, project, location, name)
		if err != nil || op.Op.Status == "DONE" {
			return op, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll.Interval):
		}
	}
}
