package engine

import (
	"context"
	"slices"
	"strings"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/logcollect"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/status"
)

// A cluster's Cloud Logging, as GKE's default logging: loggingConfig's
// components say what the engine collects into its Logging store
// (followLogs): SYSTEM_COMPONENTS (system namespaces' containers),
// WORKLOADS (every other container), and the control-plane components
// APISERVER, SCHEDULER and CONTROLLER_MANAGER. GKE's default is system
// and workloads; loggingService "none" is nothing.

const (
	loggingField        = "cluster.loggingConfig.componentConfig.enableComponents"
	loggingServiceField = "cluster.loggingService"
	// loggingService is the service a cluster with logging names.
	loggingService = "logging.googleapis.com/kubernetes"
)

// loggingComponents are the components the engine collects, in GKE's
// order.
var loggingComponents = []string{logcollect.System, logcollect.Workloads, logcollect.APIServer, logcollect.Scheduler, logcollect.ControllerManager}

// defaultLogging is what a cluster collects unless told otherwise.
var defaultLogging = []string{logcollect.System, logcollect.Workloads}

// requestedLogging is the components a create asks for: its loggingConfig,
// or none with loggingService "none", or GKE's default.
func requestedLogging(c *container.Cluster) ([]string, error) {
	switch c.LoggingService {
	case "", loggingService, "none":
	default:
		return nil, status.Invalid(loggingServiceField, "Logging service %q is not offered: kubeyard keeps logs in its own Cloud Logging (%s), or none.", c.LoggingService, loggingService)
	}
	if c.LoggingConfig == nil || c.LoggingConfig.ComponentConfig == nil {
		if c.LoggingService == "none" {
			return []string{}, nil
		}
		return slices.Clone(defaultLogging), nil
	}
	comps, err := checkLogging(loggingField, c.LoggingConfig.ComponentConfig.EnableComponents)
	if err == nil && c.LoggingService == "none" && len(comps) > 0 {
		err = status.Invalid(loggingServiceField, "Logging service \"none\" contradicts the components in loggingConfig.")
	}
	return comps, err
}

// checkLogging refuses components the engine does not collect, and
// others without SYSTEM_COMPONENTS, as GKE does; it returns them in GKE's
// order, each once.
func checkLogging(field string, comps []string) ([]string, error) {
	for _, c := range comps {
		if !slices.Contains(loggingComponents, c) {
			return nil, status.Invalid(field, "Logging component %q is not collected by kubeyard (it collects %s).", c, strings.Join(loggingComponents, ", "))
		}
	}
	if len(comps) > 0 && !slices.Contains(comps, logcollect.System) {
		return nil, status.Invalid(field, "Logging components %s require SYSTEM_COMPONENTS.", strings.Join(comps, ", "))
	}
	out := []string{}
	for _, c := range loggingComponents {
		if slices.Contains(comps, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// setLogging records the components a cluster collects, and the service
// that says whether it collects any.
func setLogging(c *container.Cluster, comps []string) {
	c.LoggingConfig = &container.LoggingConfig{ComponentConfig: &container.LoggingComponentConfig{EnableComponents: comps}}
	c.LoggingService = "none"
	if len(comps) > 0 {
		c.LoggingService = loggingService
	}
}

// loggingOf is what a cluster collects.
func loggingOf(c *container.Cluster) []string {
	if c.LoggingConfig == nil || c.LoggingConfig.ComponentConfig == nil {
		return nil
	}
	return c.LoggingConfig.ComponentConfig.EnableComponents
}

// actionUpdateLogging is the UPDATE_CLUSTER action that changes what is
// collected.
const actionUpdateLogging = "update-logging"

// updateLogging changes what a running cluster collects: the record says
// it at once, and the collector follows it from its next round.
func (e *Engine) updateLogging(ctx context.Context, r *ClusterRecord, rev int64, u *container.ClusterUpdate) (*container.Operation, error) {
	var comps []string
	switch {
	case u.DesiredLoggingConfig != nil && u.DesiredLoggingConfig.ComponentConfig != nil:
		var err error
		if comps, err = checkLogging("update.desiredLoggingConfig.componentConfig.enableComponents", u.DesiredLoggingConfig.ComponentConfig.EnableComponents); err != nil {
			return nil, err
		}
	case u.DesiredLoggingService == "none":
		comps = []string{}
	case u.DesiredLoggingService == loggingService:
		comps = slices.Clone(defaultLogging)
	default:
		return nil, status.Invalid("update.desiredLoggingService", "Logging service %q is not offered: kubeyard keeps logs in its own Cloud Logging (%s), or none.", u.DesiredLoggingService, loggingService)
	}
	if r.Operation != "" {
		return nil, busyError(r.Project, r.Location, r.Operation)
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", r.Cluster.Name, r.Cluster.Status)
	}
	setLogging(r.Cluster, comps)
	r.Cluster.Status = "RECONCILING"
	op := e.newOperation(r, OpUpdateCluster, "clusters/"+r.Cluster.Name)
	op.Action = actionUpdateLogging
	return e.startOperation(ctx, r, rev, op)
}

// runUpdateLogging starts collecting as the record says before the
// operation is done: what the newly enabled components write after that
// is collected, what they wrote before is not.
func (e *Engine) runUpdateLogging(ctx context.Context, op *operations.Record) (err error) {
	defer e.backToRunning(op, &err)
	r, err := e.clusterOf(ctx, op)
	if err != nil {
		return err
	}
	return e.collectClusterLogs(ctx, r)
}
