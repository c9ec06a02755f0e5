package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

var everything = labels.Everything()

// syncPod brings one pod to its desired state: started and Running with an
// address, or stopped and gone once it is being deleted.
func (a *Agent) syncPod(ctx context.Context, lister corelisters.PodLister, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		a.release(key)
		return nil
	}
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil {
		if err := a.cfg.Runtime.Stop(ctx, pod); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		// The kubelet's last word on a pod: delete it now that its
		// containers are gone.
		err := a.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)),
			Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		a.release(key)
		return nil
	}
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending {
		return nil
	}
	ip, err := a.podIP(ctx, key, pod)
	if err != nil {
		return err
	}
	if err := a.cfg.Runtime.Start(ctx, pod, ip); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	status := a.runningStatus(pod, ip)
	updated := pod.DeepCopy()
	updated.Status = status
	_, err = a.client.CoreV1().Pods(ns).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

// podIP allocates the pod's address from the node's pod CIDR (the node's own
// address for host-network pods).
func (a *Agent) podIP(ctx context.Context, key string, pod *corev1.Pod) (net.IP, error) {
	if pod.Spec.HostNetwork {
		return a.cfg.InternalIP, nil
	}
	cidr, err := a.podCIDR(ctx)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, owner := range a.ips {
		if owner == key {
			return net.ParseIP(ip), nil
		}
	}
	prefix, _ := netip.ParsePrefix(cidr.String())
	// The first address is the network, the second the bridge gateway.
	addr := prefix.Addr().Next().Next()
	for ; prefix.Contains(addr); addr = addr.Next() {
		if _, used := a.ips[addr.String()]; !used {
			a.ips[addr.String()] = key
			return net.IP(addr.AsSlice()), nil
		}
	}
	return nil, fmt.Errorf("pod CIDR %s is full", cidr)
}

func (a *Agent) release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, owner := range a.ips {
		if owner == key {
			delete(a.ips, ip)
		}
	}
}

// podCIDR returns the range kube-controller-manager's node IPAM assigned to
// this node; pods wait (and are retried) until there is one.
func (a *Agent) podCIDR(ctx context.Context) (*net.IPNet, error) {
	a.mu.Lock()
	cidr := a.cidr
	a.mu.Unlock()
	if cidr != nil {
		return cidr, nil
	}
	n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if n.Spec.PodCIDR == "" {
		return nil, fmt.Errorf("node %s has no pod CIDR yet", a.cfg.Name)
	}
	_, cidr, err = net.ParseCIDR(n.Spec.PodCIDR)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.cidr = cidr
	a.mu.Unlock()
	return cidr, nil
}

// runningStatus is the status the kubelet reports once every container runs.
func (a *Agent) runningStatus(pod *corev1.Pod, ip net.IP) corev1.PodStatus {
	now := metav1.NewTime(a.cfg.Clock.Now())
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	status := corev1.PodStatus{
		Phase:    corev1.PodRunning,
		HostIP:   a.cfg.InternalIP.String(),
		HostIPs:  []corev1.HostIP{{IP: a.cfg.InternalIP.String()}},
		PodIP:    ip.String(),
		PodIPs:   []corev1.PodIP{{IP: ip.String()}},
		QOSClass: pod.Status.QOSClass,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodReadyToStartContainers), cond(corev1.PodInitialized), cond(corev1.ContainersReady),
			cond(corev1.PodReady), cond(corev1.PodScheduled),
		},
		StartTime: &now,
	}
	for _, c := range pod.Spec.Containers {
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
			Name:         c.Name,
			Image:        c.Image,
			ImageID:      "kubeyard://" + c.Image,
			ContainerID:  fmt.Sprintf("kubeyard://%s-%s", pod.UID, c.Name),
			Ready:        true,
			Started:      ptr.To(true),
			State:        corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			RestartCount: 0,
		})
	}
	return status
}
