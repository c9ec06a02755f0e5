package engine

import (
	"github.com/kubeyard/kubeyard/internal/api/apierror"
)

// EtcdTopologyLabel is the resource label that chooses, at create time, where
// a cluster's etcd runs, and shows it in `describe` afterwards:
//   - "stacked" (the default): one member beside each kube-apiserver;
//   - "external": three members on machines of their own, which every
//     kube-apiserver reaches with its apiserver-etcd-client certificate.
const EtcdTopologyLabel = "kubeyard-etcd-topology"

const (
	topologyStacked  = "stacked"
	topologyExternal = "external"
	// externalEtcdMembers is the size of an external etcd cluster: three
	// members survive the loss of one.
	externalEtcdMembers = 3
)

// etcdTopology validates the topology label of a new cluster and sets it
// to the default when it is missing, so that describe always shows it.
func etcdTopology(labels map[string]string) (map[string]string, error) {
	if labels == nil {
		labels = map[string]string{}
	}
	switch t := labels[EtcdTopologyLabel]; t {
	case "":
		labels[EtcdTopologyLabel] = topologyStacked
	case topologyStacked, topologyExternal:
	default:
		return nil, apierror.InvalidArgument("cluster.resourceLabels."+EtcdTopologyLabel, "Unknown etcd topology %q: %q or %q.", t, topologyStacked, topologyExternal)
	}
	return labels, nil
}

// keepTopology refuses a label change that would change the etcd topology:
// it is chosen when the cluster is created.
func keepTopology(old, labels map[string]string) error {
	if old[EtcdTopologyLabel] != labels[EtcdTopologyLabel] {
		return apierror.InvalidArgument("resourceLabels."+EtcdTopologyLabel, "The label %s=%s is the cluster's etcd topology: it is chosen when the cluster is created and cannot change.", EtcdTopologyLabel, old[EtcdTopologyLabel])
	}
	return nil
}
