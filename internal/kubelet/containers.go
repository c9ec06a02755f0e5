package kubelet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeyard/kubeyard/internal/podruntime"
)

// The kubelet's restart back-off: 10 s, doubled each restart, at most 5
// minutes; a container that ran twice that long starts over.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
)

// restartDelay is how long after its last attempt ended a container's
// attempt number n may start: the first restart at once, then the
// back-off.
func restartDelay(last podruntime.Container) time.Duration {
	n := last.Attempt + 1
	if n <= 1 || last.FinishedAt.Sub(last.StartedAt) > 2*backoffMax {
		return 0
	}
	d := backoffInitial
	for i := 2; i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// latest is each container name's last attempt.
func latest(cs []podruntime.Container) map[string]podruntime.Container {
	out := map[string]podruntime.Container{}
	for _, c := range cs { // oldest first
		out[c.Name] = c
	}
	return out
}

// previous is the attempt before a container's last one, if any.
func previous(cs []podruntime.Container, name string) (podruntime.Container, bool) {
	var prev, last podruntime.Container
	n := 0
	for _, c := range cs {
		if c.Name == name {
			prev, last = last, c
			n++
		}
	}
	return prev, n > 1
}

// restarts says whether an ended container is started again.
func restarts(policy corev1.RestartPolicy, c podruntime.Container) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return c.ExitCode != 0
	}
	return true
}

// act starts, restarts and stops the pod's containers as its spec and
// their state ask: init containers one at a time in order, then all the
// others. It returns when the pod needs looking at next.
func (k *Kubelet) act(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox, cs []podruntime.Container) time.Duration {
	next := time.Duration(1<<63 - 1)
	last := latest(cs)
	for _, c := range cs {
		if c.State == podruntime.Unknown {
			// Its shim is gone: what runc says ends it.
			_ = k.cfg.Runtime.StopContainer(ctx, c, 0)
			return 0
		}
	}
	for i := range pod.Spec.InitContainers {
		spec := &pod.Spec.InitContainers[i]
		c, ok := last[spec.Name]
		switch {
		case !ok:
			k.start(ctx, pod, sb, spec, 0)
			return resync
		case c.State != podruntime.Exited:
			return resync
		case c.ExitCode == 0:
			continue
		case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			return 0 // the pod has failed
		default:
			return k.restart(ctx, pod, sb, spec, c)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		c, ok := last[spec.Name]
		var wait time.Duration
		switch {
		case !ok:
			wg.Go(func() { k.start(ctx, pod, sb, spec, 0) })
			wait = resync
		case c.State != podruntime.Exited:
			if k.probes.failedLiveness(c) {
				k.cfg.Recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Container %s failed liveness probe, will be restarted", spec.Name)
				wg.Go(func() { _ = k.stop(ctx, pod, spec, c, gracePeriod(pod)) })
			}
			wait = resync
		case restarts(pod.Spec.RestartPolicy, c):
			wg.Go(func() {
				d := k.restart(ctx, pod, sb, spec, c)
				mu.Lock()
				next = min(next, d)
				mu.Unlock()
			})
			continue
		default:
			continue
		}
		mu.Lock()
		next = min(next, wait)
		mu.Unlock()
	}
	wg.Wait()
	return next
}

// restart starts a container's next attempt once its back-off is over,
// removing attempts older than the one it replaces (the kubelet keeps
// the last one, for `kubectl logs --previous`).
func (k *Kubelet) restart(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox, spec *corev1.Container, c podruntime.Container) time.Duration {
	if wait := c.FinishedAt.Add(restartDelay(c)).Sub(k.now()); wait > 0 {
		return wait
	}
	cs, _ := k.cfg.Runtime.Containers(string(pod.UID))
	for _, old := range cs {
		if old.Name == c.Name && old.Attempt < c.Attempt {
			_ = k.cfg.Runtime.RemoveContainer(old)
		}
	}
	k.start(ctx, pod, sb, spec, c.Attempt+1)
	return resync
}

// pullFailure is a container whose image is not in the store: the
// kubelet's image pull back-off.
type pullFailure struct {
	image   string
	message string
	count   int
	at      time.Time
	// fresh is a pull that has just failed (ErrImagePull), not yet
	// waited on (ImagePullBackOff).
	fresh bool
}

func (p pullFailure) backoff() time.Duration {
	d := backoffInitial
	for i := 1; i < p.count && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

func containerKey(uid, name string) string { return uid + "/" + name }

// start starts one attempt of a container, recording a missing image.
func (k *Kubelet) start(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox, spec *corev1.Container, attempt int) {
	key := containerKey(string(pod.UID), spec.Name)
	k.mu.Lock()
	pull, failed := k.pulls[key]
	k.mu.Unlock()
	if failed && k.now().Sub(pull.at) < pull.backoff() {
		pull.fresh = false // ImagePullBackOff from now on
		k.mu.Lock()
		k.pulls[key] = pull
		k.mu.Unlock()
		return
	}
	cfg, err := k.containerConfig(ctx, pod, sb, spec, attempt)
	if err != nil {
		k.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %s", err)
		return
	}
	c, err := k.cfg.Runtime.StartContainer(ctx, sb, cfg)
	if errors.Is(err, podruntime.ErrImageNotFound) {
		msg := fmt.Sprintf("image %q is not in the node's image store, and kubeyard pulls from no registry: load it with `kubeyard images load <docker save or OCI archive>` or push it to the engine's registry", spec.Image)
		k.mu.Lock()
		k.pulls[key] = pullFailure{image: spec.Image, message: msg, count: pull.count + 1, at: k.now(), fresh: true}
		k.mu.Unlock()
		k.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", spec.Image, msg)
		return
	}
	k.mu.Lock()
	delete(k.pulls, key)
	k.mu.Unlock()
	if err != nil {
		k.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %s", err)
		k.cfg.Logger.Warn("start container", "pod", pod.Namespace+"/"+pod.Name, "container", spec.Name, "err", err)
		return
	}
	k.cfg.Recorder.Eventf(pod, corev1.EventTypeNormal, "Started", "Started container %s", spec.Name)
	if h := spec.Lifecycle; h != nil && h.PostStart != nil {
		// As the kubelet: a container whose postStart hook fails is
		// killed (and restarted by its policy).
		if err := k.runHook(ctx, pod, c, h.PostStart, "PostStart"); err != nil {
			_ = k.cfg.Runtime.StopContainer(ctx, c, 0)
		}
	}
}

// forget drops what the kubelet remembers of a pod that has gone.
func (k *Kubelet) forget(uid string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.volumesAt, uid)
	ofPod := func(key string) bool { return strings.HasPrefix(key, uid+"/") }
	maps.DeleteFunc(k.pulls, func(key string, _ pullFailure) bool { return ofPod(key) })
	maps.DeleteFunc(k.tokens, func(key string, _ cachedToken) bool { return ofPod(key) })
}

func (k *Kubelet) pullFailed(uid, name string) (pullFailure, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.pulls[containerKey(uid, name)]
	return p, ok
}

// gracePeriod is the pod's terminationGracePeriodSeconds (30 s unset).
func gracePeriod(pod *corev1.Pod) time.Duration {
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
		return time.Duration(*s) * time.Second
	}
	return 30 * time.Second
}

// stop stops a running container: its preStop hook, then SIGTERM, then
// SIGKILL once grace (which the hook's time counts against) is over.
func (k *Kubelet) stop(ctx context.Context, pod *corev1.Pod, spec *corev1.Container, c podruntime.Container, grace time.Duration) error {
	start := k.now()
	if spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && c.State == podruntime.Running && grace > 0 {
		hookCtx, cancel := context.WithTimeout(ctx, grace)
		_ = k.runHook(hookCtx, pod, c, spec.Lifecycle.PreStop, "PreStop")
		cancel()
	}
	return k.cfg.Runtime.StopContainer(ctx, c, max(grace-k.now().Sub(start), 0))
}

// stopAll stops every running container of the pod at once.
func (k *Kubelet) stopAll(ctx context.Context, pod *corev1.Pod, grace time.Duration) error {
	cs, err := k.cfg.Runtime.Containers(string(pod.UID))
	if err != nil {
		return err
	}
	specs := map[string]*corev1.Container{}
	for i := range pod.Spec.InitContainers {
		specs[pod.Spec.InitContainers[i].Name] = &pod.Spec.InitContainers[i]
	}
	for i := range pod.Spec.Containers {
		specs[pod.Spec.Containers[i].Name] = &pod.Spec.Containers[i]
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		if c.State == podruntime.Exited {
			continue
		}
		if spec := specs[c.Name]; spec != nil {
			k.cfg.Recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
		}
		wg.Go(func() { errs[i] = k.stop(ctx, pod, specs[c.Name], c, grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
