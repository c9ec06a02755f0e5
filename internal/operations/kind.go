// Package operations carries GKE's long-running operations from PENDING to
// DONE. Each kind of operation is one entry of a Registry: what it runs,
// whether it can be cancelled, what its failure does to its cluster, and
// what it blocks while it runs. The Runner does the rest for every kind:
// it starts an operation in the same etcd transaction as the change that
// asked for it, runs it in the background, records its stages and steps,
// resumes it after an engine restart (every step is idempotent, so a step
// cut off by a crash simply runs again), and ends it, freeing its cluster
// in the same transaction as the operation's end.
//
// To add a kind of operation: write its run function (idempotent, saving
// progress with Runner.Stage and Runner.Step), then add one Kind to the
// registry the engine builds (internal/engine/kinds.go) with its Type (and
// Action, for a variant of UPDATE_CLUSTER) and Run; set NotCancellable,
// OnFailure and Blocks only where they differ from the defaults. The
// request that starts it builds a Record and calls Runner.Start.
package operations

import (
	"context"
	"fmt"
)

// Failure is what a failed operation does to its cluster, in the
// transaction that ends the operation.
type Failure int

const (
	// KeepsCluster leaves the cluster as the operation left it (the
	// default): it serves on, and what was done stays done.
	KeepsCluster Failure = iota
	// BreaksCluster puts the cluster in ERROR with the failure's message,
	// as GKE shows a create or delete that failed.
	BreaksCluster
	// BreaksPool puts the operation's node pool in ERROR.
	BreaksPool
)

// Blocks is what an operation keeps from starting while it runs.
type Blocks int

const (
	// BlocksCluster: no other operation starts on the cluster until it is
	// DONE (GKE's CLUSTER_ALREADY_HAS_OPERATION). The default.
	BlocksCluster Blocks = iota
	// BlocksNothing: the change was made when the request was accepted,
	// and the operation is born DONE (labels, maintenance policy). Such a
	// kind has no Run.
	BlocksNothing
)

// Kind is one kind of operation.
type Kind struct {
	// Type is GKE's operationType ("CREATE_CLUSTER", ...).
	Type string
	// Action tells apart the kinds that share a Type: what an
	// UPDATE_CLUSTER does ("start-ip-rotation", ...). Empty for the rest.
	Action string
	// Run carries the operation out. It is called again from the start
	// after an engine restart, with the steps recorded so far.
	Run func(ctx context.Context, op *Record) error
	// NotCancellable, when set, is why the kind cannot be cancelled; a
	// cancel request is refused with it.
	NotCancellable string
	OnFailure      Failure
	Blocks         Blocks
}

func (k Kind) name() string {
	if k.Action == "" {
		return k.Type
	}
	return k.Type + "/" + k.Action
}

// Registry is every kind of operation there is.
type Registry []Kind

// check finds the entries that cannot work: kinds given twice, kinds that
// block but run nothing, kinds born DONE that run something.
func (g Registry) check() error {
	seen := map[string]bool{}
	for _, k := range g {
		switch {
		case k.Type == "":
			return fmt.Errorf("operations: a kind without a type")
		case seen[k.name()]:
			return fmt.Errorf("operations: kind %s is registered twice", k.name())
		case k.Blocks == BlocksCluster && k.Run == nil:
			return fmt.Errorf("operations: kind %s blocks its cluster but runs nothing", k.name())
		case k.Blocks == BlocksNothing && k.Run != nil:
			return fmt.Errorf("operations: kind %s is born DONE but has a Run", k.name())
		}
		seen[k.name()] = true
	}
	return nil
}

// lookup returns the kind of op.
func (g Registry) lookup(op *Record) (Kind, error) {
	for _, k := range g {
		if k.Type == op.Op.OperationType && k.Action == op.Action {
			return k, nil
		}
	}
	return Kind{}, fmt.Errorf("operations: no kind %s (action %q) is registered", op.Op.OperationType, op.Action)
}

// BlocksCluster says whether op, while it runs, keeps every other
// operation off its cluster.
func (g Registry) BlocksCluster(op *Record) bool {
	k, err := g.lookup(op)
	return err == nil && k.Blocks == BlocksCluster
}
