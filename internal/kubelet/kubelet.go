// Package kubelet runs the pods bound to a node as the kubelet does, over
// a podruntime: a sandbox with the pod's address, its volumes, its init
// containers in order and then its containers, restarted by its
// restartPolicy with the kubelet's back-off (CrashLoopBackOff), probed,
// and stopped gracefully when the pod is deleted; its status (phase,
// conditions, containerStatuses) is what the kubelet would post. Each sync
// reads the runtime's state afresh, so a kubelet that restarts carries on
// from where the containers are.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/runc"
	"github.com/kubeyard/kubeyard/internal/shim"
)

// Runtime is what the kubelet needs of a node's container runtime
// (podruntime.Runtime).
type Runtime interface {
	RunSandbox(podruntime.SandboxConfig) (*podruntime.Sandbox, error)
	Sandbox(uid string) (*podruntime.Sandbox, error)
	Sandboxes() ([]*podruntime.Sandbox, error)
	RemoveSandbox(ctx context.Context, uid string) error
	StartContainer(ctx context.Context, sb *podruntime.Sandbox, cfg podruntime.ContainerConfig) (podruntime.Container, error)
	Containers(uid string) ([]podruntime.Container, error)
	StopContainer(ctx context.Context, c podruntime.Container, grace time.Duration) error
	RemoveContainer(c podruntime.Container) error
	Exec(ctx context.Context, c podruntime.Container, p runc.Process) error
	Dial(ctx context.Context, uid, network, address string) (net.Conn, error)
	PortForward(ctx context.Context, uid string, port int32, stream io.ReadWriteCloser) error
	Attach(ctx context.Context, c podruntime.Container, stdin io.Reader, stdout, stderr io.Writer, resize <-chan shim.Size) error
	VolumeDir(uid string) string
}

// Config configures a Kubelet.
type Config struct {
	NodeName string
	// NodeIP is the node's InternalIP (a pod's hostIP).
	NodeIP  netip.Addr
	Client  kubernetes.Interface
	Runtime Runtime
	// PodCIDR returns the node's pod range (an error until it has one).
	PodCIDR func(context.Context) (netip.Prefix, error)
	// Services lists Services for the environment variables the kubelet
	// gives containers (nil: none but what the pod sets).
	Services corelisters.ServiceLister
	// ClusterDNS and ClusterDomain make pods' resolv.conf.
	ClusterDNS    []string
	ClusterDomain string
	// NodeDir is the node's own folder: hostPath volumes inside it are
	// allowed; outside it, as privileged containers and host
	// namespaces, only with AllowPrivileged.
	NodeDir         string
	AllowPrivileged bool
	Recorder        record.EventRecorder
	// Clock is the node's (default: the machine's); containers' times come
	// from it too.
	Clock clock.Clock
	// VolumeRefresh is how often ConfigMap, Secret, downward API and
	// projected volumes are written again, so that changes reach running
	// pods (default 1 minute, the kubelet's --sync-frequency, within which
	// it brings a pod's volumes up to date).
	VolumeRefresh time.Duration
	// Resync asks for a pod to be synced soon (a probe's result changed).
	Resync func(namespace, name string)
	Logger *slog.Logger
}

// Kubelet runs a node's pods.
type Kubelet struct {
	cfg    Config
	probes *prober

	mu        sync.Mutex
	pulls     map[string]pullFailure // by container key
	volumesAt map[string]time.Time   // by pod UID: volumes last written
	tokens    map[string]cachedToken // by pod UID/volume/path
	// allocating serializes pod address allocation; reserved are the
	// addresses of sandboxes being made (not on disk yet).
	allocating sync.Mutex
	reserved   map[netip.Addr]bool
}

// New returns a Kubelet.
func New(cfg Config) *Kubelet {
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.Recorder == nil {
		cfg.Recorder = &record.FakeRecorder{} // discards: Events is nil
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = &clock.Offset{}
	}
	if cfg.VolumeRefresh == 0 {
		cfg.VolumeRefresh = time.Minute
	}
	k := &Kubelet{cfg: cfg, pulls: map[string]pullFailure{}, volumesAt: map[string]time.Time{}, tokens: map[string]cachedToken{}, reserved: map[netip.Addr]bool{}}
	k.probes = newProber(k)
	return k
}

func (k *Kubelet) now() time.Time { return k.cfg.Clock.Now() }

// Close stops the probes.
func (k *Kubelet) Close() { k.probes.stopAll() }

// resync is how often a pod with live containers is looked at again, as
// the kubelet's PLEG relists: a container's end is noticed within it.
const resync = time.Second

// SyncPod brings a pod bound to the node towards its spec and posts its
// status. It returns when to look at the pod again (0: only when it
// changes).
func (k *Kubelet) SyncPod(ctx context.Context, pod *corev1.Pod) (time.Duration, error) {
	if pod.DeletionTimestamp != nil {
		return 0, k.TerminatePod(ctx, pod)
	}
	if isTerminal(pod.Status.Phase) {
		// Its containers have ended; ones found running (a phase
		// posted before a crash) are stopped.
		return 0, k.stopAll(ctx, pod, 0)
	}
	if field, msg := k.refuse(pod); field != "" {
		return 0, k.fail(ctx, pod, "Forbidden", fmt.Sprintf("%s: %s", field, msg))
	}
	sb, err := k.sandbox(ctx, pod)
	if err != nil {
		return 0, err
	}
	if err := k.setUpVolumes(ctx, pod, sb); err != nil {
		k.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, "FailedMount", "%s", err)
		if errors.As(err, new(unsupportedVolume)) {
			return 0, k.fail(ctx, pod, "UnsupportedVolume", err.Error())
		}
		return 0, err
	}
	cs, err := k.cfg.Runtime.Containers(string(pod.UID))
	if err != nil {
		return 0, err
	}
	next := k.act(ctx, pod, sb, cs)
	if cs, err = k.cfg.Runtime.Containers(string(pod.UID)); err != nil {
		return 0, err
	}
	k.probes.sync(pod, cs)
	status := k.status(pod, sb, cs)
	if err := k.postStatus(ctx, pod, status); err != nil {
		return 0, err
	}
	if isTerminal(status.Phase) {
		return 0, nil
	}
	return min(next, resync), nil
}

func isTerminal(p corev1.PodPhase) bool { return p == corev1.PodSucceeded || p == corev1.PodFailed }

// sandbox returns the pod's sandbox, making it (with an address from the
// node's range) the first time.
func (k *Kubelet) sandbox(ctx context.Context, pod *corev1.Pod) (*podruntime.Sandbox, error) {
	if sb, err := k.cfg.Runtime.Sandbox(string(pod.UID)); err == nil {
		return sb, nil
	}
	cfg := podruntime.SandboxConfig{
		UID: string(pod.UID), Name: pod.Name, Namespace: pod.Namespace, Hostname: hostname(pod),
		HostNetwork: pod.Spec.HostNetwork, ResolvConf: k.resolvConf(pod),
	}
	for _, a := range pod.Spec.HostAliases {
		cfg.HostAliases = append(cfg.HostAliases, append([]string{a.IP}, a.Hostnames...))
	}
	if pod.Spec.HostNetwork {
		return k.cfg.Runtime.RunSandbox(cfg)
	}
	cidr, err := k.cfg.PodCIDR(ctx)
	if err != nil {
		return nil, err
	}
	// Only the choice is serialized: pods' network namespaces are made
	// side by side.
	k.allocating.Lock()
	ip, err := k.allocate(cidr)
	if err == nil {
		k.reserved[ip] = true
	}
	k.allocating.Unlock()
	if err != nil {
		return nil, err
	}
	defer func() {
		k.allocating.Lock()
		delete(k.reserved, ip)
		k.allocating.Unlock()
	}()
	cfg.IP, cfg.PodCIDR = ip, cidr
	return k.cfg.Runtime.RunSandbox(cfg)
}

// allocate picks the first address of the range no sandbox has or is
// being given (the first two are the network and the bridge's).
func (k *Kubelet) allocate(cidr netip.Prefix) (netip.Addr, error) {
	sbs, err := k.cfg.Runtime.Sandboxes()
	if err != nil {
		return netip.Addr{}, err
	}
	used := maps.Clone(k.reserved)
	for _, sb := range sbs {
		used[sb.IP] = true
	}
	for a := cidr.Masked().Addr().Next().Next(); cidr.Contains(a); a = a.Next() {
		if !used[a] && cidr.Contains(a.Next()) { // not the broadcast address
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("kubelet: the pod range %s is full", cidr)
}

// hostname is the pod's hostname: spec.hostname, else its name (63
// characters at most, as the kubelet truncates it).
func hostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

// TerminatePod stops a pod being deleted as the kubelet does (preStop
// hooks, then SIGTERM, then SIGKILL once its grace period is over) and
// removes its sandbox. The caller then deletes the Pod.
func (k *Kubelet) TerminatePod(ctx context.Context, pod *corev1.Pod) error {
	grace := 30 * time.Second
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if err := k.stopAll(ctx, pod, grace); err != nil {
		return err
	}
	k.probes.stopPod(string(pod.UID))
	k.forget(string(pod.UID))
	return k.cfg.Runtime.RemoveSandbox(ctx, string(pod.UID))
}

// RemoveOrphans removes the sandboxes of pods the node no longer has
// (deleted while the kubelet was away, or forcibly).
func (k *Kubelet) RemoveOrphans(ctx context.Context, live map[string]bool) error {
	sbs, err := k.cfg.Runtime.Sandboxes()
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range sbs {
		if !live[sb.UID] {
			k.probes.stopPod(sb.UID)
			k.forget(sb.UID)
			errs = append(errs, k.cfg.Runtime.RemoveSandbox(ctx, sb.UID))
		}
	}
	return errors.Join(errs...)
}
