package node

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kubelet is woken by what it acts on, not by the status it posted.
func TestChangedForKubelet(t *testing.T) {
	base := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			Containers:     []corev1.Container{{Name: "c", Image: "busybox"}},
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/in-rotation"}},
		},
	}
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		change func(*corev1.Pod)
		want   bool
	}{
		{"status posted", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIP = "10.4.0.2"
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			p.ResourceVersion = "42"
		}, false},
		{"image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "busybox:1.36" }, true},
		{"label", func(p *corev1.Pod) { p.Labels["tier"] = "front" }, true},
		{"annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "b"} }, true},
		{"deleted", func(p *corev1.Pod) { p.DeletionTimestamp = &now }, true},
		{"readiness gate", func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: "example.com/in-rotation", Status: corev1.ConditionTrue}}
		}, true},
	} {
		pod := base.DeepCopy()
		tc.change(pod)
		if got := changedForKubelet(base, pod); got != tc.want {
			t.Errorf("%s: changedForKubelet = %v, want %v", tc.name, got, tc.want)
		}
	}
}
