package engine

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
)

// IPRotation is a control-plane IP rotation in progress (seeds/000): the
// cluster has a new endpoint, and the old one is served too until the
// rotation completes.
type IPRotation struct {
	OldEndpointIP string    `json:"oldEndpointIP"`
	Started       time.Time `json:"started"`
	// Completing is set once completion was accepted: the old endpoint is
	// on its way out.
	Completing bool `json:"completing,omitempty"`
	// AutoCompleteTried is when the engine last tried to complete the
	// rotation itself.
	AutoCompleteTried time.Time `json:"autoCompleteTried,omitzero"`
}

// AutoCompleteAfter is how long after its start the engine completes an IP
// rotation itself (GKE: 7 days), and AutoCompleteRetry how often it tries
// again while that fails.
const (
	AutoCompleteAfter = 7 * 24 * time.Hour
	AutoCompleteRetry = time.Hour
)

// Actions of UPDATE_CLUSTER operations.
const (
	actionStartIPRotation    = "start-ip-rotation"
	actionCompleteIPRotation = "complete-ip-rotation"
	// A credential rotation is an IP rotation that also rotates the CA.
	actionStartCredentialRotation    = "start-credential-rotation"
	actionCompleteCredentialRotation = "complete-credential-rotation"
)

// caRotationNotCancellable is why an operation that rotates the cluster
// CA cannot be cancelled.
const caRotationNotCancellable = "rotates the cluster CA; a CA rotation cannot be cancelled or rolled back, it runs to the end."

// completion is the UPDATE_CLUSTER operation that completes r's rotation.
func (e *Engine) completion(r *ClusterRecord) *operations.Record {
	op := e.newOperation(r, OpUpdateCluster, "clusters/"+r.Cluster.Name)
	op.Action = actionCompleteIPRotation
	if r.CARotation != nil {
		op.Action = actionCompleteCredentialRotation
	}
	return op
}

// StartIPRotation gives the cluster a new endpoint IP, serves both until
// completion, and then recreates every node pool, one UPGRADE_NODES
// operation per pool, so that the nodes use the new IP.
//
// With rotateCredentials (a credential rotation) the cluster also gets a new
// CA, new certificates and a new service-account signing key: by the end of
// the start operation every component trusts both CAs and holds
// credentials from the new one; completion retires the old CA and key.
func (e *Engine) StartIPRotation(ctx context.Context, project, location, name string, rotateCredentials bool) (*container.Operation, error) {
	r, rev, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	// Already rotating is said first: it holds whatever runs meanwhile
	// (the rotation's own node pool recreations, for one).
	if r.IPRotation != nil {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is already rotating its IP (started %s); complete it with --complete-ip-rotation first.", name, r.IPRotation.Started.UTC().Format(time.RFC3339))
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	if rotateCredentials {
		if err := caRotationAllowed(r); err != nil {
			return nil, err
		}
		if err := e.checkNoJoinedReplicas(r); err != nil {
			return nil, err
		}
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", name, r.Cluster.Status)
	}
	alloc, err := e.newAllocator(ctx)
	if err != nil {
		return nil, err
	}
	ip, err := alloc.ip("endpoint", e.cfg.EndpointPool, 2, e.cfg.EndpointPort)
	if err != nil {
		return nil, status.Errorf(status.FailedPrecondition, "No endpoint address is free: %v", err)
	}
	for _, nodes := range r.Nodes {
		for i := range nodes {
			if nodes[i].Endpoint == "" { // recorded before endpoints were
				nodes[i].Endpoint = r.EndpointIP
			}
		}
	}
	if rotateCredentials && r.IPRotation == nil {
		if r.CARotation, err = e.runtime.NewCARotation(e.spec(r), true, e.cfg.Clock.Now()); err != nil {
			return nil, err
		}
	}
	r.IPRotation = &IPRotation{OldEndpointIP: r.EndpointIP, Started: e.cfg.Clock.Now()}
	r.EndpointIP = ip.String()
	// The rotation moves the endpoint clients use: the public one, or the
	// private one of a cluster that has no public endpoint. A private
	// endpoint beside a public one stays.
	if r.privateOnly() {
		r.PrivateEndpointIP = r.EndpointIP
	}
	r.reportEndpoints()
	r.Allocations = append(r.Allocations, alloc.got...)
	op := e.newOperation(r, OpUpdateCluster, "clusters/"+name)
	op.Action = actionStartIPRotation
	if r.CARotation != nil {
		op.Action = actionStartCredentialRotation
	}
	return e.startOperation(ctx, r, rev, op)
}

// CompleteIPRotation stops serving the old endpoint. Every node must use
// the new one by then.
func (e *Engine) CompleteIPRotation(ctx context.Context, project, location, name string) (*container.Operation, error) {
	r, rev, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	if r.IPRotation == nil || r.IPRotation.Completing {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is not rotating its IP; start with --start-ip-rotation.", name)
	}
	if pool := e.poolOnOldIP(r); pool != "" {
		return nil, status.Errorf(status.FailedPrecondition, "Node pool %q requires recreation.", pool)
	}
	r.IPRotation.Completing = true
	return e.startOperation(ctx, r, rev, e.completion(r))
}

// poolOnOldIP returns the first node pool with a node that does not use
// the cluster's endpoint, or "".
func (e *Engine) poolOnOldIP(r *ClusterRecord) string {
	for _, p := range r.Cluster.NodePools {
		for _, n := range r.Nodes[p.Name] {
			if n.Endpoint != r.EndpointIP {
				return p.Name
			}
		}
	}
	return ""
}

// runStartIPRotation serves the control plane on the new IP beside the
// old one; a credential rotation also rolls in the new CA, up to the phase
// where it signs.
func (e *Engine) runStartIPRotation(ctx context.Context, op *operations.Record) error {
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	if r.IPRotation == nil {
		return fmt.Errorf("engine: cluster %s: the IP rotation record is gone", r.Cluster.Name)
	}
	e.ops.Stage(ctx, op, "Serving the control plane on the new IP "+r.EndpointIP+" and the old "+r.IPRotation.OldEndpointIP)
	if err := e.resumeCluster(ctx, r); err != nil {
		return err
	}
	if r.CARotation == nil {
		return nil
	}
	return e.rotateCA(ctx, op, cluster.CASignNew)
}

// runCompleteIPRotation retires the old IP (and, ending a credential
// rotation, the old CA), then frees the old endpoint's address.
func (e *Engine) runCompleteIPRotation(ctx context.Context, op *operations.Record) error {
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	if r.IPRotation == nil {
		return nil // completed before a crash cut the operation off
	}
	e.ops.Stage(ctx, op, "Retiring the old IP "+r.IPRotation.OldEndpointIP)
	if err := e.resumeCluster(ctx, r); err != nil {
		return err
	}
	if r.CARotation != nil {
		if r.CARotation.Phase != cluster.CATrustNew {
			if _, err = e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
				r.CARotation.Phase = cluster.CATrustNew
				return nil
			}); err != nil {
				return err
			}
		}
		if err := e.rotateCA(ctx, op, cluster.CATrustNew); err != nil {
			return err
		}
	}
	old := "allocations/endpoint/" + r.IPRotation.OldEndpointIP
	_, err = e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
		r.IPRotation, r.CARotation = nil, nil
		r.Allocations = removeString(r.Allocations, old)
		return nil
	})
	return err
}

// nudgeRotations wakes the rotation follower (an operation has finished).
func (e *Engine) nudgeRotations() { nudge(e.rotationNudge) }

// nudge wakes a follower waiting on ch.
func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a nudge is pending already
	}
}

// recreateNext starts the UPGRADE_NODES operation of the next node pool
// with nodes on the old IP, if the cluster rotates its IP and is idle.
func (e *Engine) recreateNext(ctx context.Context, project, location, name string) {
	r, rev, err := e.getCluster(ctx, project, location, name)
	if err != nil || r.Operation != "" || r.IPRotation == nil || r.IPRotation.Completing || r.Cluster.Status != "RUNNING" {
		return
	}
	pool := e.poolOnOldIP(r)
	if pool == "" {
		return
	}
	why := maintenanceHold(r.Cluster.MaintenancePolicy, e.cfg.Clock.Now())
	e.reportHold(r.key(), pool, why)
	if why != "" {
		return
	}
	var replace []string
	for _, n := range r.Nodes[pool] {
		if n.Endpoint != r.EndpointIP {
			replace = append(replace, n.Name)
		}
	}
	if _, err := e.startOperation(ctx, r, rev, e.recreation(r, pool, replace)); err != nil {
		e.cfg.Logger.Warn("node pool recreation", "cluster", name, "pool", pool, "err", err)
	}
}

// reportHold logs when maintenance starts or stops holding back the
// recreation of a cluster's pool (why: the reason, "" for none), once per
// change rather than at every round of the follower.
func (e *Engine) reportHold(cluster, pool, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := cluster + "/" + pool
	if e.held[key] == why {
		return
	}
	if why != "" {
		e.cfg.Logger.Info("node pool recreation held back", "cluster", cluster, "pool", pool, "reason", why)
		e.held[key] = why
	} else {
		e.cfg.Logger.Info("node pool recreation no longer held back", "cluster", cluster, "pool", pool)
		delete(e.held, key)
	}
}

// recreation is an UPGRADE_NODES operation that recreates the named nodes
// of the pool.
func (e *Engine) recreation(r *ClusterRecord, pool string, replace []string) *operations.Record {
	op := e.newOperation(r, OpUpgradeNodes, "clusters/"+r.Cluster.Name+"/nodePools/"+pool)
	op.Pool, op.Replace = pool, replace
	return op
}

// followRotations carries IP rotations on, until ctx ends: it starts the
// recreation of the next node pool once the cluster is idle and
// maintenance allows it, and completes rotations left for seven days. It
// looks every interval, and at once when nudged.
func (e *Engine) followRotations(ctx context.Context, every time.Duration) {
	follow(ctx, every, e.rotationNudge, func() {
		clusters, err := e.listClusters(ctx, "clusters/")
		if err != nil {
			return
		}
		for _, r := range clusters {
			if r.IPRotation != nil && r.Operation == "" {
				e.recreateNext(ctx, r.Project, r.Location, r.Cluster.Name)
				e.autoComplete(ctx, r.Project, r.Location, r.Cluster.Name)
			}
		}
	})
}

// follow calls f every interval, and at once when nudged (nudge may be
// nil), until ctx ends.
func follow(ctx context.Context, every time.Duration, nudge <-chan struct{}, f func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-nudge:
		}
		f()
	}
}

// autoComplete completes a rotation started AutoCompleteAfter ago (engine
// clock), if the cluster is idle. While nodes still use the old IP that
// fails: the failure is reported as a failed UPDATE_CLUSTER operation, and
// tried again AutoCompleteRetry later.
func (e *Engine) autoComplete(ctx context.Context, project, location, name string) {
	r, rev, err := e.getCluster(ctx, project, location, name)
	if err != nil || r.Operation != "" || r.IPRotation == nil || r.IPRotation.Completing {
		return
	}
	now := e.cfg.Clock.Now()
	if now.Sub(r.IPRotation.Started) < AutoCompleteAfter || now.Sub(r.IPRotation.AutoCompleteTried) < AutoCompleteRetry {
		return
	}
	r.IPRotation.AutoCompleteTried = now
	op := e.completion(r)
	if pool := e.poolOnOldIP(r); pool != "" {
		failure := status.Errorf(status.FailedPrecondition, "The IP rotation started %s could not be completed automatically: Node pool %q requires recreation.", r.IPRotation.Started.UTC().Format(time.RFC3339), pool)
		if err := e.ops.Record(ctx, op, failure, r.writes(rev)...); err == nil {
			e.cfg.Logger.Warn("automatic IP rotation completion failed", "cluster", name, "pool", pool)
		}
		return
	}
	r.IPRotation.Completing = true
	if _, err := e.startOperation(ctx, r, rev, op); err != nil {
		e.cfg.Logger.Warn("automatic IP rotation completion", "cluster", name, "err", err)
	}
}

// runRecreatePool replaces, one at a time, the nodes the operation names,
// the way a surge upgrade does: a new node joins (through the cluster's
// endpoint) and is Ready before the old one is cordoned, drained and
// deleted.
func (e *Engine) runRecreatePool(ctx context.Context, op *operations.Record) error {
	for {
		r, err := e.clusterOf(ctx, op)
		if err != nil {
			return err
		}
		p := r.pool(op.Pool)
		if p == nil {
			return nil
		}
		if len(r.Retiring) == 0 {
			i := -1
			for j, n := range r.Nodes[op.Pool] {
				if slices.Contains(op.Replace, n.Name) {
					i = j
					break
				}
			}
			if i < 0 {
				return nil
			}
			// The new node takes the old one's place (and zone); the old
			// one is retiring until it is drained. The new node's
			// addresses are claimed with the record that lists it.
			old := r.Nodes[op.Pool][i]
			var n NodeRecord
			if r, err = e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
				alloc, err := e.newAllocator(ctx)
				if err != nil {
					return err
				}
				if n, err = e.newNode(alloc, r, r.pool(op.Pool)); err != nil {
					return err
				}
				r.Nodes[op.Pool][i] = n
				r.Retiring = append(r.Retiring, old)
				r.Allocations = append(r.Allocations, alloc.got...)
				return nil
			}); err != nil {
				return err
			}
			e.ops.Stage(ctx, op, fmt.Sprintf("Recreating node %s as %s", old.Name, n.Name))
		}
		if _, err := e.ensurePoolNodes(ctx, r, op.Pool); err != nil {
			return err
		}
		for _, old := range r.Retiring {
			if err := e.runtime.RemoveNode(ctx, e.spec(r), old.Name); err != nil {
				return err
			}
			if r, err = e.dropNodes(ctx, r, []NodeRecord{old}, func(r *ClusterRecord) {
				r.Retiring = removeNode(r.Retiring, old.Name)
			}); err != nil {
				return err
			}
		}
	}
}

// endpointOf is the endpoint as the API reports it: "IP", or "IP:PORT"
// when the port is not 443.
func endpointOf(r *ClusterRecord) string {
	if r.EndpointPort != 0 && r.EndpointPort != 443 {
		return net.JoinHostPort(r.EndpointIP, fmt.Sprint(r.EndpointPort))
	}
	return r.EndpointIP
}
