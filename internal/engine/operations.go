package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// OperationRecord is an operation as the engine stores it.
type OperationRecord struct {
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
	// Action says what an UPDATE_CLUSTER operation does.
	Action string `json:"action,omitempty"`
	// Replace names the nodes an UPGRADE_NODES operation recreates.
	Replace []string `json:"replace,omitempty"`
}

func (o *OperationRecord) key() string { return operationKey(o.Project, o.Location, o.Op.Name) }

// Operation types, as GKE names them.
const (
	OpCreateCluster        = "CREATE_CLUSTER"
	OpDeleteCluster        = "DELETE_CLUSTER"
	OpCreateNodePool       = "CREATE_NODE_POOL"
	OpDeleteNodePool       = "DELETE_NODE_POOL"
	OpSetNodePoolSize      = "SET_NODE_POOL_SIZE"
	OpUpgradeMaster        = "UPGRADE_MASTER"
	OpUpgradeNodes         = "UPGRADE_NODES"
	OpUpdateCluster        = "UPDATE_CLUSTER"
	OpSetMaintenancePolicy = "SET_MAINTENANCE_POLICY"
	OpSetLabels            = "SET_LABELS"
)

func newOperationName(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("operation-%d-%s", now.UnixMilli(), hex.EncodeToString(b))
}

// newOperation builds a PENDING operation on cluster r; target is the
// cluster's or a node pool's path below the location.
func (e *Engine) newOperation(r *ClusterRecord, opType, target string) *OperationRecord {
	now := e.cfg.Clock.Now()
	name := newOperationName(now)
	loc := e.locationURL(r.Project, r.Location)
	op := &container.Operation{
		Name:          name,
		OperationType: opType,
		Status:        "PENDING",
		SelfLink:      loc + "/operations/" + name,
		TargetLink:    loc + "/" + target,
		StartTime:     now.UTC().Format(time.RFC3339Nano),
		Location:      r.Location,
		Progress:      &container.OperationProgress{Status: "PENDING"},
	}
	if l, _ := ParseLocation(r.Location); !l.Regional() {
		op.Zone = r.Location
	}
	return &OperationRecord{Op: op, Project: r.Project, Location: r.Location, ClusterName: r.Cluster.Name}
}

// locationURL is the selfLink prefix of a location, in the zones/ form for
// zones as GKE gives it.
func (e *Engine) locationURL(project, location string) string {
	kind := "locations"
	if l, ok := ParseLocation(location); ok && !l.Regional() {
		kind = "zones"
	}
	return fmt.Sprintf("%s/v1/projects/%s/%s/%s", e.cfg.BaseURL, project, kind, location)
}

// busyError is what a request meets while another operation runs.
func busyError(project, location, op string) error {
	return status.Errorf(status.FailedPrecondition, "Cluster is running incompatible operation %s.", operationURLName(project, location, op)).
		WithReason("container.googleapis.com", "CLUSTER_ALREADY_HAS_OPERATION", map[string]string{"operation": operationURLName(project, location, op)})
}

func operationURLName(project, location, op string) string {
	return fmt.Sprintf("projects/%s/locations/%s/operations/%s", project, location, op)
}

// startOperation stores op and marks the cluster busy with it, atomically
// with the cluster change made by mutate; rev guards the cluster record
// (store.Absent for a new cluster). It then runs op in the background.
func (e *Engine) startOperation(ctx context.Context, r *ClusterRecord, rev int64, op *OperationRecord, extra ...store.Write) (*container.Operation, error) {
	if r.Operation != "" {
		return nil, busyError(r.Project, r.Location, r.Operation)
	}
	r.Operation = op.Op.Name
	writes := append([]store.Write{
		{Key: r.key(), Value: r, Revision: rev},
		{Key: op.key(), Value: op, Revision: store.Absent},
	}, extra...)
	if err := e.store.Commit(ctx, writes...); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Someone changed the cluster meanwhile: report what runs now.
			cur, _, gerr := e.getCluster(ctx, r.Project, r.Location, r.Cluster.Name)
			switch {
			case rev == store.Absent && gerr == nil:
				return nil, status.Errorf(status.AlreadyExists, "Already exists: projects/%s/locations/%s/clusters/%s.", r.Project, r.Location, r.Cluster.Name)
			case gerr == nil && cur.Operation != "":
				return nil, busyError(r.Project, r.Location, cur.Operation)
			}
			return nil, status.Errorf(status.FailedPrecondition, "Cluster %q changed during the request; retry.", r.Cluster.Name)
		}
		return nil, err
	}
	e.launch(op)
	return op.Op, nil
}

// launch runs an operation in the background until it is DONE.
func (e *Engine) launch(op *OperationRecord) {
	ctx, cancel := context.WithCancel(e.ctx)
	e.mu.Lock()
	e.running[op.key()] = cancel
	e.mu.Unlock()
	e.wg.Go(func() {
		defer func() {
			e.mu.Lock()
			delete(e.running, op.key())
			e.mu.Unlock()
			cancel()
		}()
		e.execute(ctx, op)
	})
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

// execute carries out op and records its end. An engine that stops midway
// leaves it RUNNING, and the next engine runs it again from the start: every
// step is idempotent.
func (e *Engine) execute(ctx context.Context, op *OperationRecord) {
	op.Op.Status = "RUNNING"
	op.Op.Progress.Status = "RUNNING"
	if err := e.saveOperation(ctx, op); err != nil {
		e.cfg.Logger.Error("operation", "op", op.Op.Name, "err", err)
		return
	}
	e.cfg.Logger.Info("operation started", "op", op.Op.Name, "type", op.Op.OperationType, "cluster", op.ClusterName)
	err := recovered(e.cfg.Logger, op.Op.Name, func() error { return e.run(ctx, op) })
	if e.ctx.Err() != nil {
		return // the engine is stopping: the next one resumes the operation
	}
	if err == nil && ctx.Err() != nil {
		err = context.Canceled
	}
	e.finish(op, err)
}

// run dispatches on the operation type.
func (e *Engine) run(ctx context.Context, op *OperationRecord) error {
	switch op.Op.OperationType {
	case OpCreateCluster:
		return e.runCreateCluster(ctx, op)
	case OpDeleteCluster:
		return e.runDeleteCluster(ctx, op)
	case OpCreateNodePool, OpSetNodePoolSize:
		return e.runReconcilePool(ctx, op)
	case OpDeleteNodePool:
		return e.runDeleteNodePool(ctx, op)
	case OpUpgradeMaster:
		return e.runUpgradeMaster(ctx, op)
	case OpUpdateCluster:
		return e.runUpdateCluster(ctx, op)
	case OpUpgradeNodes:
		return e.runRecreatePool(ctx, op)
	case OpSetLabels, OpSetMaintenancePolicy:
		return nil // applied when the request was accepted
	}
	return fmt.Errorf("engine: unknown operation type %s", op.Op.OperationType)
}

// stage records progress: a named step and its status.
func (e *Engine) stage(ctx context.Context, op *OperationRecord, name string) {
	for _, s := range op.Op.Progress.Stages {
		if s.Status == "RUNNING" {
			s.Status = "DONE"
		}
	}
	op.Op.Progress.Stages = append(op.Op.Progress.Stages, &container.OperationProgress{Name: name, Status: "RUNNING"})
	if err := e.saveOperation(ctx, op); err != nil {
		e.cfg.Logger.Warn("save progress", "op", op.Op.Name, "err", err)
	}
}

func (e *Engine) saveOperation(ctx context.Context, op *OperationRecord) error {
	var cur OperationRecord
	if _, err := e.store.Get(ctx, op.key(), &cur); err == nil && cur.Cancelled {
		op.Cancelled = true
	}
	return e.store.Commit(ctx, store.Write{Key: op.key(), Value: op, Revision: store.Any})
}

// finish marks op DONE (with its error, if any) and frees the cluster.
func (e *Engine) finish(op *OperationRecord, runErr error) {
	ctx := context.Background()
	var cur OperationRecord
	if _, err := e.store.Get(ctx, op.key(), &cur); err == nil && cur.Cancelled {
		op.Cancelled = true
	}
	now := e.cfg.Clock.Now()
	op.Op.Status = "DONE"
	op.Op.EndTime = now.UTC().Format(time.RFC3339Nano)
	op.Op.Progress.Status = "DONE"
	for _, s := range op.Op.Progress.Stages {
		if s.Status == "RUNNING" {
			s.Status = "DONE"
		}
	}
	if runErr != nil {
		st := status.From(runErr)
		code, msg := int64(st.Code), st.Message
		if op.Cancelled || errors.Is(runErr, context.Canceled) {
			code, msg = int64(status.Cancelled), "Operation was cancelled."
		}
		op.Op.Error = &container.Status{Code: code, Message: msg}
		op.Op.StatusMessage = msg
		e.cfg.Logger.Warn("operation failed", "op", op.Op.Name, "err", runErr)
	} else {
		e.cfg.Logger.Info("operation done", "op", op.Op.Name, "type", op.Op.OperationType)
	}
	for {
		r, rev, err := e.getCluster(ctx, op.Project, op.Location, op.ClusterName)
		writes := []store.Write{{Key: op.key(), Value: op, Revision: store.Any}}
		if err == nil && r.Operation == op.Op.Name {
			r.Operation = ""
			if runErr != nil {
				e.markFailed(r, op, runErr)
			}
			writes = append(writes, store.Write{Key: r.key(), Value: r, Revision: rev})
		}
		err = e.store.Commit(ctx, writes...)
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				e.cfg.Logger.Error("finish operation", "op", op.Op.Name, "err", err)
				return
			}
			break
		}
	}
	// The cluster is idle: an IP rotation may go on at once rather than at
	// the follower's next round.
	e.nudgeRotations()
}

// markFailed records a failed operation on the cluster: a cluster whose
// create or delete failed is in ERROR, as in GKE; a failed pool operation
// puts the pool in ERROR.
func (e *Engine) markFailed(r *ClusterRecord, op *OperationRecord, err error) {
	msg := op.Op.StatusMessage
	switch op.Op.OperationType {
	case OpCreateCluster, OpDeleteCluster:
		r.Cluster.Status, r.Cluster.StatusMessage = "ERROR", msg
	case OpCreateNodePool, OpSetNodePoolSize, OpDeleteNodePool:
		if p := r.pool(op.Pool); p != nil {
			p.Status, p.StatusMessage = "ERROR", msg
		}
	}
}

func (e *Engine) listOperations(ctx context.Context, prefix string) ([]*OperationRecord, error) {
	return store.ListAs[OperationRecord](ctx, e.store, prefix)
}

// GetOperation returns one operation.
func (e *Engine) GetOperation(ctx context.Context, project, location, name string) (*container.Operation, error) {
	var op OperationRecord
	if _, err := e.store.Get(ctx, operationKey(project, location, name), &op); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(status.NotFound, "Operation %q not found.", operationURLName(project, location, name))
		}
		return nil, err
	}
	return op.Op, nil
}

// ListOperations lists the operations in a location ("-" for all).
func (e *Engine) ListOperations(ctx context.Context, project, location string) ([]*container.Operation, error) {
	prefix := "operations/" + project + "/"
	if location != "-" {
		prefix += location + "/"
	}
	ops, err := e.listOperations(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]*container.Operation, 0, len(ops))
	for _, op := range ops {
		out = append(out, op.Op)
	}
	return out, nil
}

// CancelOperation stops a running operation; it ends DONE with a CANCELLED
// error, and what it had done so far stays (as in GKE).
func (e *Engine) CancelOperation(ctx context.Context, project, location, name string) error {
	key := operationKey(project, location, name)
	for {
		var op OperationRecord
		rev, err := e.store.Get(ctx, key, &op)
		if errors.Is(err, store.ErrNotFound) {
			return status.Errorf(status.NotFound, "Operation %q not found.", operationURLName(project, location, name))
		}
		if err != nil {
			return err
		}
		if op.Op.Status == "DONE" {
			return status.Errorf(status.FailedPrecondition, "Operation %s is already done.", name)
		}
		if op.rotatesCA() {
			return status.Errorf(status.FailedPrecondition, "Operation %s rotates the cluster CA; a CA rotation cannot be cancelled or rolled back, it runs to the end.", name)
		}
		op.Cancelled = true
		err = e.store.Commit(ctx, store.Write{Key: key, Value: &op, Revision: rev})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	e.mu.Lock()
	cancel := e.running[key]
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return nil
}

// WaitOperation blocks until the operation is DONE or ctx ends (used by the
// CLI and tests).
func (e *Engine) WaitOperation(ctx context.Context, project, location, name string) (*container.Operation, error) {
	for {
		op, err := e.GetOperation(ctx, project, location, name)
		if err != nil || op.Status == "DONE" {
			return op, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
