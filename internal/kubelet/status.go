package kubelet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/internal/podruntime"
)

// containerIDPrefix is the runtime's name in container IDs, as
// containerd's is "containerd://".
const containerIDPrefix = "kubeyard://"

// status is the pod's status as the kubelet computes it from its
// containers' state.
func (k *Kubelet) status(pod *corev1.Pod, sb *podruntime.Sandbox, cs []podruntime.Container) corev1.PodStatus {
	old := pod.Status
	now := apiTime(k.now())
	st := corev1.PodStatus{
		HostIP:    k.cfg.NodeIP.String(),
		HostIPs:   []corev1.HostIP{{IP: k.cfg.NodeIP.String()}},
		QOSClass:  old.QOSClass,
		StartTime: old.StartTime,
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	ip := sb.IP.String()
	if sb.HostNetwork {
		ip = k.cfg.NodeIP.String()
	}
	st.PodIP, st.PodIPs = ip, []corev1.PodIP{{IP: ip}}

	last := latest(cs)
	initDone, initFailed := true, false
	var incomplete []string
	for i := range pod.Spec.InitContainers {
		spec := &pod.Spec.InitContainers[i]
		s := k.containerStatus(pod, spec, cs, last, true, false)
		st.InitContainerStatuses = append(st.InitContainerStatuses, s)
		if t := s.State.Terminated; t != nil && t.ExitCode == 0 {
			continue
		}
		initDone = false
		incomplete = append(incomplete, spec.Name)
		if c, ok := last[spec.Name]; ok && c.State == podruntime.Exited && c.ExitCode != 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			initFailed = true
		}
	}
	var unready []string
	waiting, running, stopped, succeeded := 0, 0, 0, 0
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		s := k.containerStatus(pod, spec, cs, last, false, !initDone)
		st.ContainerStatuses = append(st.ContainerStatuses, s)
		if !s.Ready {
			unready = append(unready, spec.Name)
		}
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.LastTerminationState.Terminated != nil:
			stopped++
		default:
			waiting++
		}
	}
	policy := pod.Spec.RestartPolicy
	switch {
	case initFailed:
		st.Phase = corev1.PodFailed
	case !initDone, waiting > 0:
		st.Phase = corev1.PodPending
	case running > 0:
		st.Phase = corev1.PodRunning
	case policy == corev1.RestartPolicyAlways || policy == "":
		st.Phase = corev1.PodRunning
	case policy == corev1.RestartPolicyOnFailure && stopped != succeeded:
		st.Phase = corev1.PodRunning
	case stopped == succeeded:
		st.Phase = corev1.PodSucceeded
	default:
		st.Phase = corev1.PodFailed
	}

	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg}
		if ok {
			c = corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
		}
		return c
	}
	terminal := isTerminal(st.Phase)
	readyReason, readyMsg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if terminal {
		readyReason, readyMsg = "PodCompleted", ""
	}
	containersReady := len(unready) == 0 && !terminal
	ready := cond(corev1.PodReady, containersReady, readyReason, readyMsg)
	if containersReady {
		ready = k.readinessGates(pod)
	}
	initReason, initMsg := "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incomplete, " "))
	conds := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, !terminal, "", ""),
		cond(corev1.PodInitialized, initDone, initReason, initMsg),
		ready,
		cond(corev1.ContainersReady, containersReady, readyReason, readyMsg),
	}
	// Keep the others' conditions (PodScheduled, DisruptionTarget, gates),
	// and each condition's transition time while it holds.
	for _, c := range old.Conditions {
		if !slices.ContainsFunc(conds, func(n corev1.PodCondition) bool { return n.Type == c.Type }) {
			conds = append(conds, c)
		}
	}
	for i := range conds {
		conds[i].LastTransitionTime = now
		for _, o := range old.Conditions {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	st.Conditions = conds
	return st
}

// readinessGates is the Ready condition once the containers are ready:
// true if every readiness gate's condition is.
func (k *Kubelet) readinessGates(pod *corev1.Pod) corev1.PodCondition {
	var unmet []string
	for _, g := range pod.Spec.ReadinessGates {
		ok := slices.ContainsFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == g.ConditionType && c.Status == corev1.ConditionTrue
		})
		if !ok {
			unmet = append(unmet, string(g.ConditionType))
		}
	}
	if len(unmet) > 0 {
		return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ReadinessGatesNotReady",
			Message: fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", unmet[0])}
	}
	return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
}

func terminated(c podruntime.Container) *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{
		ExitCode: int32(c.ExitCode), Reason: c.Reason, Message: c.Message,
		StartedAt: apiTime(c.StartedAt), FinishedAt: apiTime(c.FinishedAt), ContainerID: containerIDPrefix + c.ID,
	}
}

// containerStatus is one container's status: waiting (to be created, on
// its image, in back-off), running, or terminated, with its last
// termination and restart count.
func (k *Kubelet) containerStatus(pod *corev1.Pod, spec *corev1.Container, cs []podruntime.Container, last map[string]podruntime.Container, init, initializing bool) corev1.ContainerStatus {
	s := corev1.ContainerStatus{Name: spec.Name, Image: spec.Image, Started: ptr.To(false)}
	c, ok := last[spec.Name]
	if ok {
		s.Image, s.ImageID, s.ContainerID, s.RestartCount = c.Image, c.ImageRef, containerIDPrefix+c.ID, int32(c.Attempt)
		if prev, ok := previous(cs, spec.Name); ok {
			s.LastTerminationState.Terminated = terminated(prev)
		}
	}
	if pull, failed := k.pullFailed(string(pod.UID), spec.Name); failed {
		if pull.fresh {
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: pull.message}
		} else {
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q: %s", pull.image, pull.message)}
		}
		if ok && c.State == podruntime.Exited {
			s.LastTerminationState.Terminated = terminated(c)
		}
		return s
	}
	switch {
	case !ok && initializing:
		s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
	case !ok, c.State == podruntime.Created:
		s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	case c.State == podruntime.Running:
		s.State.Running = &corev1.ContainerStateRunning{StartedAt: apiTime(c.StartedAt)}
		s.Started = ptr.To(k.probes.started(pod, spec, c))
		s.Ready = *s.Started && !init && k.probes.ready(pod, spec, c)
	case !init || c.ExitCode != 0:
		wait := c.FinishedAt.Add(restartDelay(c)).Sub(k.now())
		if restarts(pod.Spec.RestartPolicy, c) && wait > 0 {
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", restartDelay(c), spec.Name, pod.Name, pod.Namespace, pod.UID)}
			s.LastTerminationState.Terminated = terminated(c)
			break
		}
		s.State.Terminated = terminated(c)
	default:
		s.State.Terminated = terminated(c)
	}
	return s
}

// apiTime is t as the API server keeps it, to the second: a status
// compares equal to the one posted before, and is not posted again.
func apiTime(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }

// postStatus posts the pod's status when it has changed.
func (k *Kubelet) postStatus(ctx context.Context, pod *corev1.Pod, status corev1.PodStatus) error {
	if apiequality.Semantic.DeepEqual(pod.Status, status) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = status
	_, err := k.cfg.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

// fail ends a pod that cannot run on the node: phase Failed with the
// reason, its containers stopped.
func (k *Kubelet) fail(ctx context.Context, pod *corev1.Pod, reason, msg string) error {
	k.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, reason, "%s", msg)
	if err := k.stopAll(ctx, pod, 0); err != nil {
		return err
	}
	st := pod.Status.DeepCopy()
	st.Phase, st.Reason, st.Message = corev1.PodFailed, reason, msg
	if st.StartTime == nil {
		now := apiTime(k.now())
		st.StartTime = &now
	}
	return k.postStatus(ctx, pod, *st)
}
