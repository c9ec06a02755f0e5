package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
)

// MinCARotationVersion is the oldest control-plane version whose cluster
// CA can be rotated: the version whose components read the trust bundle
// (ca-bundle.crt) rather than the signing CA.
const MinCARotationVersion = "1.37.2"

// actionRotateClusterCA is the UPDATE_CLUSTER action of a cluster CA
// rotation (`kubeyard update credentials --cluster-ca`).
const actionRotateClusterCA = "rotate-cluster-ca"

// RotateClusterCA starts a cluster CA rotation (seeds/001): a new cluster
// CA, rolled in gradually, the old one retired at the end. The etcd and
// front-proxy CAs stay. It cannot be paused or rolled back.
func (e *Engine) RotateClusterCA(ctx context.Context, project, location, name string) (*container.Operation, error) {
	r, rev, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if err := caRotationAllowed(r); err != nil {
		return nil, err
	}
	if err := e.checkNoJoinedReplicas(r); err != nil {
		return nil, err
	}
	if r.IPRotation != nil {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is rotating its IP (started %s); complete that first.", name, r.IPRotation.Started.UTC().Format("2006-01-02T15:04:05Z"))
	}
	rot, err := e.runtime.NewCARotation(e.spec(r), false, e.cfg.Clock.Now())
	if err != nil {
		return nil, err
	}
	r.CARotation = rot
	op := e.newOperation(r, OpUpdateCluster, "clusters/"+name)
	op.Action = actionRotateClusterCA
	return e.startOperation(ctx, r, rev, op)
}

// checkNoJoinedReplicas refuses a CA rotation while control-plane replicas
// joined from other machines: the engine cannot reach their certificates,
// and they would stop working when the old CA is retired.
func (e *Engine) checkNoJoinedReplicas(r *ClusterRecord) error {
	if joined := e.runtime.JoinedReplicas(e.spec(r)); len(joined) > 0 {
		return status.Errorf(status.FailedPrecondition, "Cluster %q has control-plane replicas joined from other machines (%s); a CA rotation cannot reach their certificates. Let them leave first (stop their `kubeyard join --control-plane`).", r.Cluster.Name, strings.Join(joined, ", "))
	}
	return nil
}

// caRotationAllowed checks what every CA rotation needs: an idle, running
// cluster on a version that supports it, not rotating its CA already.
func caRotationAllowed(r *ClusterRecord) error {
	if r.Operation != "" {
		return busyError(r.Project, r.Location, r.Operation)
	}
	if r.CARotation != nil {
		return status.Errorf(status.FailedPrecondition, "Cluster %q is already rotating its CA (phase %s).", r.Cluster.Name, r.CARotation.Phase)
	}
	if r.Cluster.Status != "RUNNING" {
		return status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", r.Cluster.Name, r.Cluster.Status)
	}
	if versionBefore(r.Cluster.CurrentMasterVersion, MinCARotationVersion) {
		return status.Errorf(status.FailedPrecondition, "Cluster %q runs version %s; rotating its CA needs %s or later. Upgrade the control plane first.", r.Cluster.Name, r.Cluster.CurrentMasterVersion, MinCARotationVersion)
	}
	return nil
}

// versionBefore compares the major.minor.patch of two versions
// ("1.37.2-kubeyard.0" is 1.37.2).
func versionBefore(v, min string) bool {
	parse := func(s string) []int {
		s, _, _ = strings.Cut(strings.TrimPrefix(s, "v"), "-")
		var out []int
		for _, p := range strings.SplitN(s, ".", 3) {
			n, _ := strconv.Atoi(p)
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(parse(v), parse(min)) < 0
}

// rotateCA runs the CA rotation's phases from the one recorded up to and
// including last, recording each before applying it: after a crash the
// recorded phase is applied again, which writes the same files.
//
// The caller brings the cluster up first (resumeCluster): after an engine
// restart nothing runs a busy cluster's node agents, and a component
// stopped for a restart may not have been started again.
func (e *Engine) rotateCA(ctx context.Context, op *operations.Record, last cluster.CAPhase) error {
	for {
		r, err := e.clusterOf(ctx, op)
		if err != nil {
			return err
		}
		rot := r.CARotation
		e.ops.Stage(ctx, op, caPhaseStage[rot.Phase])
		say := func(msg string) { e.ops.Stage(ctx, op, msg) }
		if err := e.runtime.RotateCA(ctx, e.spec(r), rot, say); err != nil {
			return err
		}
		// masterAuth shows the signing CA: what a kubeconfig fetched now
		// must trust to keep working after the rotation.
		if _, err := e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
			if r.CARotation == nil {
				return fmt.Errorf("engine: cluster %s: the CA rotation record is gone", r.Cluster.Name)
			}
			r.Cluster.MasterAuth = &container.MasterAuth{ClusterCaCertificate: e.caCertificate(e.spec(r))}
			if rot.Phase != last {
				r.CARotation.Phase = cluster.CAPhases[slices.Index(cluster.CAPhases, rot.Phase)+1]
			}
			return nil
		}); err != nil || rot.Phase == last {
			return err
		}
	}
}

// caPhaseStage names each phase in the operation's progress.
var caPhaseStage = map[cluster.CAPhase]string{
	cluster.CATrustBoth: "CA rotation 1/3: every component trusts the old and the new cluster CA",
	cluster.CASignNew:   "CA rotation 2/3: certificates issued again from the new cluster CA, components restarted one at a time",
	cluster.CATrustNew:  "CA rotation 3/3: the old cluster CA is trusted no more",
}

// runRotateClusterCA carries a cluster CA rotation through every phase.
func (e *Engine) runRotateClusterCA(ctx context.Context, op *operations.Record) error {
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	if r.CARotation == nil {
		return nil // completed before a crash cut the operation off
	}
	if err := e.resumeCluster(ctx, r); err != nil {
		return err
	}
	if err := e.rotateCA(ctx, op, cluster.CATrustNew); err != nil {
		return err
	}
	_, err = e.updateCluster(ctx, op.Project, op.Location, op.ClusterName, func(r *ClusterRecord) error {
		r.CARotation = nil
		return nil
	})
	return err
}

// AdminKubeconfig returns the cluster's admin kubeconfig (kubeadm's
// admin.conf: a client certificate in kubeadm:cluster-admins, through the
// cluster endpoint), as it is now.
func (e *Engine) AdminKubeconfig(ctx context.Context, project, location, name string) ([]byte, error) {
	r, _, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	return e.runtime.AdminKubeconfig(e.spec(r))
}
