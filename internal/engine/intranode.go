package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
)

// Intra-node visibility (seeds/003): while it is on, the netd DaemonSet
// routes what pods send through the VPC network, same-node traffic
// included, so firewall rules and flow logs see it. Off by default.

const intraNodeField = "cluster.networkConfig.enableIntraNodeVisibility"

// intraNodeVisibility says whether the cluster has it on.
func intraNodeVisibility(c *container.Cluster) bool {
	return c.NetworkConfig != nil && c.NetworkConfig.EnableIntraNodeVisibility
}

// checkIntraNodeVisibility refuses it where GKE does: below version 1.15,
// and with Windows node pools.
func checkIntraNodeVisibility(field, version string, pools []*container.NodePool) error {
	if below115(version) {
		return status.Invalid(field, "Intra-node visibility requires version 1.15 or later (the cluster's version is %s).", version)
	}
	for _, p := range pools {
		if p.Config != nil && strings.HasPrefix(p.Config.ImageType, "WINDOWS") {
			return status.Invalid(field, "Intra-node visibility is not supported on Windows node pools (node pool %q has image type %s).", p.Name, p.Config.ImageType)
		}
	}
	return nil
}

// below115 says whether a version (1.14, 1.14.10-gke.27, ...) is older
// than 1.15; aliases such as "latest" are not.
func below115(v string) bool {
	major, rest, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil && (ma < 1 || ma == 1 && mi < 15)
}

// actionUpdateIntraNodeVisibility is the UPDATE_CLUSTER action that turns
// intra-node visibility on or off.
const actionUpdateIntraNodeVisibility = "update-intra-node-visibility"

// updateIntraNodeVisibility turns it on or off on a running cluster. The
// record says the new setting at once; the operation restarts the control
// plane, replica by replica, and then starts or stops netd on every node.
func (e *Engine) updateIntraNodeVisibility(ctx context.Context, r *ClusterRecord, rev int64, cfg *container.IntraNodeVisibilityConfig) (*container.Operation, error) {
	const field = "update.desiredIntraNodeVisibilityConfig.enabled"
	if cfg.Enabled == intraNodeVisibility(r.Cluster) {
		return nil, status.Invalid(field, "Intra-node visibility is already %s on cluster %q.", map[bool]string{true: "enabled", false: "disabled"}[cfg.Enabled], r.Cluster.Name)
	}
	if cfg.Enabled {
		if err := checkIntraNodeVisibility(field, r.Cluster.CurrentMasterVersion, r.Cluster.NodePools); err != nil {
			return nil, err
		}
	}
	if r.Operation != "" {
		return nil, busyError(r.Project, r.Location, r.Operation)
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", r.Cluster.Name, r.Cluster.Status)
	}
	// The control plane restarts one replica at a time.
	if err := e.runtime.CheckHealthy(ctx, e.spec(r)); err != nil {
		return nil, quorumError(r.Cluster.Name, err)
	}
	if r.Cluster.NetworkConfig == nil {
		r.Cluster.NetworkConfig = &container.NetworkConfig{}
	}
	r.Cluster.NetworkConfig.EnableIntraNodeVisibility = cfg.Enabled
	r.Cluster.Status = "RECONCILING"
	op := e.newOperation(r, OpUpdateCluster, "clusters/"+r.Cluster.Name)
	op.Action = actionUpdateIntraNodeVisibility
	return e.startOperation(ctx, r, rev, op)
}

// runUpdateIntraNodeVisibility restarts the control-plane replicas (op.Step
// counts those done), then brings netd to the setting the record says.
func (e *Engine) runUpdateIntraNodeVisibility(ctx context.Context, op *operations.Record) (err error) {
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	defer e.backToRunning(op, &err)
	if err := e.restartControlPlane(ctx, op, r); err != nil {
		return err
	}
	return e.applyIntraNodeVisibility(ctx, op, r)
}

// applyIntraNodeVisibility starts netd on every node, or stops it, as the
// record says.
func (e *Engine) applyIntraNodeVisibility(ctx context.Context, op *operations.Record, r *ClusterRecord) error {
	on := intraNodeVisibility(r.Cluster)
	e.ops.Stage(ctx, op, map[bool]string{true: "Starting netd on every node", false: "Stopping netd on every node"}[on])
	if err := e.runtime.SetIntraNodeVisibility(ctx, e.spec(r), on); err != nil {
		return fmt.Errorf("intra-node visibility: %w", err)
	}
	return nil
}
