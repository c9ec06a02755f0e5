package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// drain empties a cordoned node of its pods, as kubectl drain does.
type drain struct {
	client kubernetes.Interface
	node   string
	// agent is the node's, if this engine runs it: its watch of the node's
	// pods is read rather than the API server asked ten times a second,
	// which a thousand nodes removed 32 at a time made 320 Lists a second.
	agent   podWatch
	logger  *slog.Logger
	evicted map[types.UID]time.Time // when each pod's eviction was asked for
}

// podWatch is what a node agent knows of its pods (node.Agent.Pods).
type podWatch interface {
	Pods() ([]*corev1.Pod, bool)
}

// evictAgain is how long a pod whose eviction was refused (its disruption
// budget) waits for the next try, as kubectl drain's.
const evictAgain = 5 * time.Second

// round evicts the node's pods that are not going yet, and fails while any
// is left.
func (d *drain) round(ctx context.Context) error {
	var pods []*corev1.Pod
	watched := false
	if d.agent != nil {
		pods, watched = d.agent.Pods()
	}
	if !watched {
		var err error
		if pods, err = d.list(ctx); err != nil {
			return err
		}
	}
	left := d.evict(ctx, pods)
	if left == 0 && watched {
		// The watch may be behind the API server: a List has the last word.
		fresh, err := d.list(ctx)
		if err != nil {
			return err
		}
		left = d.evict(ctx, fresh)
	}
	if left > 0 {
		return fmt.Errorf("%d pods left on %s", left, d.node)
	}
	return nil
}

func (d *drain) list(ctx context.Context) ([]*corev1.Pod, error) {
	list, err := d.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", d.node).String()})
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[i] = &list.Items[i]
	}
	return pods, nil
}

// evict asks for the eviction of each pod not yet going, and returns how
// many pods are left (DaemonSet pods stay).
func (d *drain) evict(ctx context.Context, pods []*corev1.Pod) (left int) {
	for _, p := range pods {
		if ownedByDaemonSet(p) {
			continue
		}
		left++
		if p.DeletionTimestamp != nil {
			// A node no agent of this engine runs (one retiring when an
			// earlier engine crashed) has no kubelet to finish its pods:
			// once their grace period is over they are deleted here, and
			// the dataplane's removal stops what they ran.
			if d.agent == nil && time.Now().After(p.DeletionTimestamp.Time) { // the API server's clock, the machine's
				force := metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}}
				if err := d.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, force); err != nil && !apierrors.IsNotFound(err) {
					d.logger.Info("delete", "pod", p.Namespace+"/"+p.Name, "err", err)
				}
			}
			continue
		}
		if at, ok := d.evicted[p.UID]; ok && time.Since(at) < evictAgain {
			continue // asked for already: the watch has not seen it go yet
		}
		if d.evicted == nil {
			d.evicted = map[types.UID]time.Time{}
		}
		d.evicted[p.UID] = time.Now()
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		if err := d.client.CoreV1().Pods(p.Namespace).EvictV1(ctx, ev); err != nil && !apierrors.IsNotFound(err) {
			d.logger.Info("evict", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
	return left
}

func ownedByDaemonSet(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}
