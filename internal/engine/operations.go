package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

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
func (e *Engine) newOperation(r *ClusterRecord, opType, target string) *operations.Record {
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
	return &operations.Record{Op: op, Project: r.Project, Location: r.Location, ClusterName: r.Cluster.Name}
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
	name := operations.URLName(project, location, op)
	return status.Errorf(status.FailedPrecondition, "Cluster is running incompatible operation %s.", name).
		WithReason("container.googleapis.com", "CLUSTER_ALREADY_HAS_OPERATION", map[string]string{"operation": name})
}

// startOperation stores op and, unless its kind blocks nothing, marks the
// cluster busy with it, atomically with the cluster change the request
// made to r; rev guards the cluster record (store.Absent for a new
// cluster), and extra writes go with them. The operation then runs in the
// background.
func (e *Engine) startOperation(ctx context.Context, r *ClusterRecord, rev int64, op *operations.Record, extra ...store.Write) (*container.Operation, error) {
	if r.Operation != "" {
		return nil, busyError(r.Project, r.Location, r.Operation)
	}
	if e.kinds.BlocksCluster(op) {
		r.Operation = op.Op.Name
	}
	err := e.ops.Start(ctx, op, append(r.writes(rev), extra...)...)
	if errors.Is(err, store.ErrConflict) {
		// Someone changed the cluster meanwhile: report what runs now.
		cur, _, gerr := e.getCluster(ctx, r.Project, r.Location, r.Cluster.Name)
		switch {
		case rev == store.Absent && gerr == nil:
			return nil, status.Errorf(status.AlreadyExists, "Already exists: projects/%s/locations/%s/clusters/%s.", r.Project, r.Location, r.Cluster.Name)
		case gerr == nil && cur.Operation != "":
			return nil, busyError(r.Project, r.Location, cur.Operation)
		}
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q changed during the request, or an address it was given was taken meanwhile; retry.", r.Cluster.Name)
	}
	if err != nil {
		return nil, err
	}
	return op.Op, nil
}

// releaseCluster frees op's cluster as op ends: the cluster is no longer
// busy, and a failure does to it what the operation's kind says. The
// operations runner commits it with op's end.
func (e *Engine) releaseCluster(ctx context.Context, op *operations.Record, kind operations.Kind, runErr error) ([]store.Write, error) {
	r, rev, err := e.getCluster(ctx, op.Project, op.Location, op.ClusterName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // deleted
	}
	if err != nil {
		return nil, err
	}
	if r.Operation != op.Op.Name {
		return nil, nil
	}
	r.Operation = ""
	if runErr != nil {
		msg := op.Op.StatusMessage
		switch kind.OnFailure {
		case operations.BreaksCluster:
			r.Cluster.Status, r.Cluster.StatusMessage = "ERROR", msg
		case operations.BreaksPool:
			if p := r.pool(op.Pool); p != nil {
				p.Status, p.StatusMessage = "ERROR", msg
			}
		}
	}
	return r.writes(rev), nil
}

// GetOperation returns one operation.
func (e *Engine) GetOperation(ctx context.Context, project, location, name string) (*container.Operation, error) {
	op, err := e.ops.Get(ctx, project, location, name)
	if err != nil {
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
	ops, err := e.ops.List(ctx, prefix)
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
	return e.ops.Cancel(ctx, project, location, name)
}

// WaitOperation blocks until the operation is DONE or ctx ends (used by the
// CLI and tests).
func (e *Engine) WaitOperation(ctx context.Context, project, location, name string) (*container.Operation, error) {
	op, err := e.ops.Wait(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	return op.Op, nil
}
