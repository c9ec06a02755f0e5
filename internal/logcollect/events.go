package logcollect

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeyard/kubeyard/internal/logging"
)

// EventEntry is a Kubernetes event as GKE's event exporter writes it, in
// the events log: the Event itself as jsonPayload, about the pod or node
// it concerns (k8s_pod, k8s_node) or else the cluster (k8s_cluster);
// Warning events are WARNING, others INFO.
func EventEntry(c Cluster, ev *corev1.Event) logging.Entry {
	labels := map[string]string{"project_id": c.Project, "location": c.Location, "cluster_name": c.Name}
	resource := logging.Resource{Type: "k8s_cluster", Labels: labels}
	switch ev.InvolvedObject.Kind {
	case "Pod":
		resource.Type = "k8s_pod"
		labels["namespace_name"], labels["pod_name"] = ev.InvolvedObject.Namespace, ev.InvolvedObject.Name
	case "Node":
		resource.Type = "k8s_node"
		labels["node_name"] = ev.InvolvedObject.Name
	}
	at := ev.LastTimestamp.Time
	if at.IsZero() {
		at = ev.EventTime.Time
	}
	if at.IsZero() {
		at = ev.CreationTimestamp.Time
	}
	severity := "INFO"
	if ev.Type == corev1.EventTypeWarning {
		severity = "WARNING"
	}
	obj := ev.DeepCopy()
	obj.APIVersion, obj.Kind = "v1", "Event"
	obj.ManagedFields = nil
	var payload map[string]any
	raw, _ := json.Marshal(obj)
	_ = json.Unmarshal(raw, &payload)
	return logging.Entry{LogName: LogName(c.Project, "events"), Resource: resource, Timestamp: at, Severity: severity, JSONPayload: payload}
}
