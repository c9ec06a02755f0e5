package engine

import (
	"maps"

	"github.com/kubeyard/kubeyard/internal/status"
)

// EtcdTopologyLabel is the resource label that chooses, at create time, where
// a cluster's etcd runs, and shows it in `describe` afterwards:
//   - "stacked" (the default): one member beside each kube-apiserver;
//   - "external": three members on machines of their own, which every
//     kube-apiserver reaches with its apiserver-etcd-client certificate;
//   - "shared" (zonal clusters): the engine's shared etcd, under a key
//     prefix and with an etcd user of the cluster's own (see sharedetcd).
//     Many small clusters then run one etcd rather than one each.
const EtcdTopologyLabel = "kubeyard-etcd-topology"

const (
	topologyStacked  = "stacked"
	topologyExternal = "external"
	topologyShared   = "shared"
	// externalEtcdMembers is the size of an external etcd cluster: three
	// members survive the loss of one.
	externalEtcdMembers = 3
)

// etcdTopology validates the topology label of a new cluster in a regional
// or zonal location and sets it to the default when it is missing, so that
// describe always shows it.
func etcdTopology(labels map[string]string, regional bool) (map[string]string, error) {
	if labels == nil {
		labels = map[string]string{}
	}
	const field = "cluster.resourceLabels." + EtcdTopologyLabel
	switch t := labels[EtcdTopologyLabel]; t {
	case "":
		labels[EtcdTopologyLabel] = topologyStacked
	case topologyStacked, topologyExternal:
	case topologyShared:
		if regional {
			return nil, status.Invalid(field, "%s=%s: the shared etcd serves zonal clusters only; a regional cluster's replicas keep etcd members of their own (%q or %q).", EtcdTopologyLabel, topologyShared, topologyStacked, topologyExternal)
		}
	default:
		return nil, status.Invalid(field, "Unknown etcd topology %q: %q, %q or %q.", t, topologyStacked, topologyExternal, topologyShared)
	}
	return labels, nil
}

// keepTopology carries the topology label over into a label update: it is
// the engine's, chosen when the cluster was created. An update that leaves
// it out keeps it (gcloud's --update-labels sends only the labels it sets);
// one that changes it is refused.
func keepTopology(old, labels map[string]string) (map[string]string, error) {
	t, ok := labels[EtcdTopologyLabel]
	if ok && t != old[EtcdTopologyLabel] {
		return nil, status.Invalid("resourceLabels."+EtcdTopologyLabel, "The label %s=%s is the cluster's etcd topology: it is chosen when the cluster is created and cannot change.", EtcdTopologyLabel, old[EtcdTopologyLabel])
	}
	if !ok && old[EtcdTopologyLabel] != "" {
		labels = maps.Clone(labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[EtcdTopologyLabel] = old[EtcdTopologyLabel]
	}
	return labels, nil
}
