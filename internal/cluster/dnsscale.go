package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The DNS add-on's replicas follow the cluster's size as GKE's
// kube-dns-autoscaler (cluster-proportional-autoscaler, linear mode) sets
// them: max(ceil(cores/coresPerReplica), ceil(nodes/nodesPerReplica)),
// within min and max, and at least two on two nodes or more
// (preventSinglePointFailure). Its parameters are the "linear" key of the
// kube-dns-autoscaler ConfigMap, made with GKE's defaults at create; a user
// may change them. The engine applies them whenever it has changed the
// cluster's nodes, rather than running a poller in every cluster.
// Simulated nodes are not counted: a replica there answers nothing.

const dnsAutoscalerName = "kube-dns-autoscaler"

// dnsScaling is the autoscaler's linear mode's parameters.
type dnsScaling struct {
	CoresPerReplica           float64 `json:"coresPerReplica,omitempty"`
	NodesPerReplica           float64 `json:"nodesPerReplica,omitempty"`
	Min                       int     `json:"min,omitempty"`
	Max                       int     `json:"max,omitempty"`
	PreventSinglePointFailure bool    `json:"preventSinglePointFailure,omitempty"`
	IncludeUnschedulableNodes bool    `json:"includeUnschedulableNodes,omitempty"`
}

// gkeDNSScaling is GKE's kube-dns-autoscaler ConfigMap, with the
// upstream add-on's floor of one replica.
var gkeDNSScaling = dnsScaling{CoresPerReplica: 256, NodesPerReplica: 16, Min: 1, PreventSinglePointFailure: true, IncludeUnschedulableNodes: true}

func dnsAutoscalerConfigMap() *corev1.ConfigMap {
	linear, _ := json.Marshal(gkeDNSScaling)
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: dnsAutoscalerName, Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{"linear": string(linear)},
	}
}

// parseDNSScaling reads the ConfigMap's "linear" key as the autoscaler
// does: one of coresPerReplica and nodesPerReplica at least, neither
// negative.
func parseDNSScaling(cm *corev1.ConfigMap) (dnsScaling, error) {
	var p dnsScaling
	linear, ok := cm.Data["linear"]
	if !ok {
		return p, fmt.Errorf("ConfigMap %s has no linear key", dnsAutoscalerName)
	}
	if err := json.Unmarshal([]byte(linear), &p); err != nil {
		return p, fmt.Errorf("ConfigMap %s: linear: %w", dnsAutoscalerName, err)
	}
	if p.CoresPerReplica == 0 && p.NodesPerReplica == 0 {
		return p, fmt.Errorf("ConfigMap %s: linear: coresPerReplica or nodesPerReplica must be set", dnsAutoscalerName)
	}
	if p.CoresPerReplica < 0 || p.NodesPerReplica < 0 || p.Min < 0 || p.Max < 0 {
		return p, fmt.Errorf("ConfigMap %s: linear: no parameter may be negative", dnsAutoscalerName)
	}
	return p, nil
}

// replicas is what the parameters give for the nodes and cores.
func (p dnsScaling) replicas(nodes, cores int) int32 {
	by := func(n int, per float64) int {
		if per == 0 {
			return 1
		}
		r := int(math.Ceil(float64(n) / per))
		if p.Max != 0 {
			r = min(r, p.Max)
		}
		return max(r, p.Min)
	}
	fromNodes := by(nodes, p.NodesPerReplica)
	if p.PreventSinglePointFailure && nodes > 1 {
		fromNodes = max(fromNodes, 2)
	}
	return int32(max(fromNodes, by(cores, p.CoresPerReplica)))
}

// ScaleDNS sets the DNS add-on's replicas for the cluster's nodes as they
// are now. A cluster without the add-on, or whose autoscaler ConfigMap a
// user has removed, is left alone.
func (r *Runtime) ScaleDNS(ctx context.Context, s Spec) error {
	if len(clusterDNS(s)) == 0 {
		return nil
	}
	return withAdminClient(s, func(client kubernetes.Interface) error { return scaleDNS(ctx, client) })
}

func scaleDNS(ctx context.Context, client kubernetes.Interface) error {
	sys := metav1.NamespaceSystem
	cm, err := client.CoreV1().ConfigMaps(sys).Get(ctx, dnsAutoscalerName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	params, err := parseDNSScaling(cm)
	if err != nil {
		return err
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: SimulatedLabel + "!=true"})
	if err != nil {
		return err
	}
	nodes, cores := 0, 0
	for _, n := range list.Items {
		if n.Spec.Unschedulable && !params.IncludeUnschedulableNodes {
			continue
		}
		nodes++
		cores += int(n.Status.Capacity.Cpu().Value())
	}
	want := params.replicas(nodes, cores)
	scale, err := client.AppsV1().Deployments(sys).GetScale(ctx, dnsName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if scale.Spec.Replicas == want {
		return nil
	}
	scale.Spec.Replicas = want
	if _, err := client.AppsV1().Deployments(sys).UpdateScale(ctx, dnsName, scale, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("cluster DNS: scale to %d: %w", want, err)
	}
	return nil
}
