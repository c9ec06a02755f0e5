package cluster

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// GKE's kube-dns autoscaler's linear mode: a replica per 16 nodes or 256
// cores, whichever gives more, and never one alone on two nodes or more.
func TestDNSReplicasFollowTheNodes(t *testing.T) {
	params, err := parseDNSScaling(dnsAutoscalerConfigMap())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		nodes, cores int
		want         int32
	}{
		{0, 0, 1}, // the floor
		{1, 2, 1},
		{2, 4, 2}, // no single point of failure
		{16, 32, 2},
		{17, 34, 2},
		{40, 80, 3},
		{1000, 2000, 63},
		{3, 1024, 4}, // big nodes: the cores decide
	} {
		if got := params.replicas(c.nodes, c.cores); got != c.want {
			t.Errorf("%d nodes, %d cores: %d replicas, want %d", c.nodes, c.cores, got, c.want)
		}
	}
	capped := dnsScaling{NodesPerReplica: 1, Max: 3}
	if got := capped.replicas(10, 0); got != 3 {
		t.Errorf("nodesPerReplica 1, max 3, 10 nodes: %d replicas", got)
	}
}

// A ConfigMap the autoscaler would refuse is refused, saying why.
func TestDNSScalingParameters(t *testing.T) {
	for linear, want := range map[string]string{
		`{"min":2}`:                     "coresPerReplica or nodesPerReplica must be set",
		`{"nodesPerReplica":-1}`:        "negative",
		`{"nodesPerReplica":"sixteen"}`: "linear",
	} {
		cm := dnsAutoscalerConfigMap()
		cm.Data["linear"] = linear
		if _, err := parseDNSScaling(cm); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("linear %s: %v, want an error saying %q", linear, err, want)
		}
	}
	if _, err := parseDNSScaling(&corev1.ConfigMap{}); err == nil {
		t.Error("a ConfigMap without the linear key was taken")
	}
}
