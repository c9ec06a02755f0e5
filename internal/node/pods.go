package node

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/internal/kubelet"
)

var everything = labels.Everything()

// syncPod brings one pod to its desired state and returns when to look
// at it again (0: when it changes). A pod being deleted is stopped, then
// deleted: the kubelet's last word on it.
func (a *Agent) syncPod(ctx context.Context, get func(ns, name string) (*corev1.Pod, error), key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := get(ns, name)
	if apierrors.IsNotFound(err) {
		a.release(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if pod.DeletionTimestamp != nil {
		if a.kubelet != nil {
			if err := a.kubelet.TerminatePod(ctx, pod); err != nil {
				return 0, fmt.Errorf("stop: %w", err)
			}
		}
		err := a.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)),
			Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, err
		}
		a.release(key)
		return 0, nil
	}
	if a.kubelet != nil {
		return a.kubelet.SyncPod(ctx, pod)
	}
	return 0, a.syncSimulated(ctx, key, pod)
}

// kubeletHandler calls enqueue with the pods a kubelet acts on: added,
// deleted, or changed as changedForKubelet says.
func kubeletHandler(enqueue func(obj any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, obj any) {
			if o, ok := old.(*corev1.Pod); ok {
				if p, ok := obj.(*corev1.Pod); ok && !changedForKubelet(o, p) {
					return
				}
			}
			enqueue(obj)
		},
		DeleteFunc: enqueue,
	}
}

// changedForKubelet says whether an update of a pod is one its kubelet
// acts on. As the kubelet's pod source ignores status, which the kubelet
// itself posts, a status-only update (its own, mostly) is not: spec,
// labels and annotations (the downward API shows them), deletion, and
// the conditions of the pod's readiness gates (set by others) are.
func changedForKubelet(old, pod *corev1.Pod) bool {
	if !equality.Semantic.DeepEqual(old.Spec, pod.Spec) || !maps.Equal(old.Labels, pod.Labels) ||
		!maps.Equal(old.Annotations, pod.Annotations) || !old.DeletionTimestamp.Equal(pod.DeletionTimestamp) ||
		!ptr.Equal(old.DeletionGracePeriodSeconds, pod.DeletionGracePeriodSeconds) {
		return true
	}
	for _, gate := range pod.Spec.ReadinessGates {
		if !equality.Semantic.DeepEqual(condition(old, gate.ConditionType), condition(pod, gate.ConditionType)) {
			return true
		}
	}
	return false
}

func condition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// syncSimulated makes a pod of a simulated node Running with an address
// at once; no process runs.
func (a *Agent) syncSimulated(ctx context.Context, key string, pod *corev1.Pod) error {
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending {
		return nil
	}
	ip, err := a.podIP(ctx, key, pod)
	if err != nil {
		return err
	}
	updated := pod.DeepCopy()
	updated.Status = a.runningStatus(pod, ip)
	_, err = a.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

// adoptSimulated keeps the addresses of a simulated node's pods across an
// agent restart.
func (a *Agent) adoptSimulated(all []*corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range all {
		if p.Status.PodIP != "" && !p.Spec.HostNetwork {
			a.ips[p.Status.PodIP] = p.Namespace + "/" + p.Name
		}
	}
}

// removeOrphans removes, now and then, the sandboxes of pods the node no
// longer has (deleted by force, or while the agent was away).
func (a *Agent) removeOrphans(ctx context.Context, lister corelisters.PodLister) {
	for {
		all, err := lister.List(everything)
		if err == nil {
			live := map[string]bool{}
			for _, p := range all {
				live[string(p.UID)] = true
			}
			if err := a.kubelet.RemoveOrphans(ctx, live); err != nil && ctx.Err() == nil {
				a.cfg.Logger.Warn("remove orphaned pods", "node", a.cfg.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
}

// newKubelet is the node's kubelet, posting events as the node.
func (a *Agent) newKubelet(services corelisters.ServiceLister, resync func(ns, name string)) *kubelet.Kubelet {
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	ip, _ := netip.AddrFromSlice(a.cfg.InternalIP.To4())
	return kubelet.New(kubelet.Config{
		NodeName: a.cfg.Name, NodeIP: ip, Client: a.client, Runtime: a.cfg.Pods,
		PodCIDR: func(ctx context.Context) (netip.Prefix, error) {
			cidr, err := a.podCIDR(ctx)
			if err != nil {
				return netip.Prefix{}, err
			}
			return netip.MustParsePrefix(cidr.String()), nil
		},
		Services: services, ClusterDNS: a.cfg.ClusterDNS, NodeDir: a.cfg.Dir, AllowPrivileged: a.cfg.AllowPrivileged,
		Recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: a.cfg.Name}),
		Resync:   resync, Logger: a.cfg.Logger, Clock: a.cfg.Clock,
	})
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
	if a.cfg.OnPodCIDR != nil {
		if err := a.cfg.OnPodCIDR(netip.MustParsePrefix(cidr.String())); err != nil {
			return nil, fmt.Errorf("node %s: route its pod range %s: %w", a.cfg.Name, cidr, err)
		}
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

func (a *Agent) osImage() string {
	if a.cfg.Pods == nil {
		return "kubeyard simulated node"
	}
	return "kubeyard node (" + runtime.GOOS + ")"
}

func (a *Agent) runtimeVersion() string {
	if a.cfg.Pods == nil {
		return "kubeyard://simulated"
	}
	return "kubeyard://runc"
}

// kernelVersion is the machine's kernel: a real node's containers run
// on it.
func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
