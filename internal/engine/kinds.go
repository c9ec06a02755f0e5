package engine

import "github.com/kubeyard/kubeyard/internal/operations"

// kinds is every kind of operation the engine runs, one entry each (see
// package operations for how to add one). By default a kind blocks its
// cluster while it runs, can be cancelled, and leaves the cluster as it is
// when it fails. Every kind runs once its cluster is back up after an engine
// start (afterResume).
func (e *Engine) registry() operations.Registry {
	kinds := operations.Registry{
		{Type: OpCreateCluster, Run: e.runCreateCluster, OnFailure: operations.BreaksCluster},
		{Type: OpDeleteCluster, Run: e.runDeleteCluster, OnFailure: operations.BreaksCluster,
			NotCancellable: "deletes the cluster; a deletion cannot be cancelled, it runs to the end."},
		{Type: OpCreateNodePool, Run: e.runReconcilePool, OnFailure: operations.BreaksPool},
		{Type: OpSetNodePoolSize, Run: e.runReconcilePool, OnFailure: operations.BreaksPool},
		{Type: OpDeleteNodePool, Run: e.runDeleteNodePool, OnFailure: operations.BreaksPool},
		{Type: OpUpgradeMaster, Run: e.runUpgradeMaster},
		{Type: OpUpgradeNodes, Run: e.runRecreatePool},
		{Type: OpUpdateCluster, Action: actionUpdateAuthorizedNetworks, Run: e.runUpdateAuthorizedNetworks},
		{Type: OpUpdateCluster, Action: actionUpdateIntraNodeVisibility, Run: e.runUpdateIntraNodeVisibility},
		{Type: OpUpdateCluster, Action: actionUpdateLogging, Run: e.runUpdateLogging},
		{Type: OpUpdateCluster, Action: actionStartIPRotation, Run: e.runStartIPRotation},
		{Type: OpUpdateCluster, Action: actionCompleteIPRotation, Run: e.runCompleteIPRotation},
		{Type: OpUpdateCluster, Action: actionStartCredentialRotation, Run: e.runStartIPRotation, NotCancellable: caRotationNotCancellable},
		{Type: OpUpdateCluster, Action: actionCompleteCredentialRotation, Run: e.runCompleteIPRotation, NotCancellable: caRotationNotCancellable},
		{Type: OpUpdateCluster, Action: actionRotateClusterCA, Run: e.runRotateClusterCA, NotCancellable: caRotationNotCancellable},
		// Applied when the request is accepted.
		{Type: OpSetLabels, Blocks: operations.BlocksNothing},
		{Type: OpSetMaintenancePolicy, Blocks: operations.BlocksNothing},
	}
	for i := range kinds {
		if kinds[i].Run != nil {
			kinds[i].Run = e.afterResume(kinds[i].Run)
		}
	}
	return kinds
}
