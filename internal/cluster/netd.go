package cluster

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/internal/netd"
	"github.com/kubeyard/kubeyard/internal/poll"
)

// SetIntraNodeVisibility runs the netd DaemonSet in kube-system while on
// is true, and waits until it is Ready on every node (its readiness probe
// checks the node's policy routing); off, it deletes the DaemonSet and
// waits until every netd pod is gone (each undoes its routing as it
// stops).
func (r *Runtime) SetIntraNodeVisibility(ctx context.Context, s Spec, on bool) error {
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	sets := client.AppsV1().DaemonSets(metav1.NamespaceSystem)
	if !on {
		err := sets.Delete(ctx, netdName, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("cluster %s: netd: %w", s.Name, err)
		}
		return poll.Until(ctx, func(ctx context.Context) error {
			pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=" + netdName})
			if err != nil {
				return err
			}
			if len(pods.Items) > 0 {
				return fmt.Errorf("%d netd pods are still stopping", len(pods.Items))
			}
			return nil
		})
	}
	want := netdDaemonSet()
	if _, err := sets.Create(ctx, want, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		// As the engine makes it, whatever became of it.
		err = poll.Until(ctx, func(ctx context.Context) error {
			have, err := sets.Get(ctx, netdName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			have.Spec = want.Spec
			_, err = sets.Update(ctx, have, metav1.UpdateOptions{})
			return err
		})
	} else if err != nil {
		return fmt.Errorf("cluster %s: netd: %w", s.Name, err)
	}
	return poll.Until(ctx, func(ctx context.Context) error {
		ds, err := sets.Get(ctx, netdName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := ds.Status
		if st.ObservedGeneration < ds.Generation || st.NumberReady < st.DesiredNumberScheduled || st.UpdatedNumberScheduled < st.DesiredNumberScheduled {
			return fmt.Errorf("netd is ready on %d of %d nodes", st.NumberReady, st.DesiredNumberScheduled)
		}
		return nil
	})
}

const netdName = "netd"

// netdDaemonSet is netd on every Linux node, as GKE deploys it: in the
// node's network namespace, allowed to change its routing, and critical
// to the node.
func netdDaemonSet() *appsv1.DaemonSet {
	labels := map[string]string{"k8s-app": netdName}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: netdName, Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"k8s-app": netdName, "addonmanager.kubernetes.io/mode": "Reconcile"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					PriorityClassName:             "system-node-critical",
					NodeSelector:                  map[string]string{corev1.LabelOSStable: "linux"},
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					Containers: []corev1.Container{{
						Name: netdName, Image: netd.Image, ImagePullPolicy: corev1.PullIfNotPresent,
						SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/netd", "check"}}},
							PeriodSeconds: 2,
						},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("5m"), corev1.ResourceMemory: resource.MustParse("20Mi")}},
					}},
				},
			},
		},
	}
}
