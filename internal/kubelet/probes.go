package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/runc"
)

type probeKind string

const (
	liveness  probeKind = "liveness"
	readiness probeKind = "readiness"
	startup   probeKind = "startup"
)

type result int

const (
	unknown result = iota
	success
	failure
)

// prober runs a worker per probe of each running container attempt, as
// the kubelet's prober does; a result that changes resyncs the pod.
type prober struct {
	k       *Kubelet
	mu      sync.Mutex
	workers map[string]*probeWorker
}

type probeWorker struct {
	cancel context.CancelFunc
	result result
	// now runs the probe at once rather than at the next period.
	now chan struct{}
}

func newProber(k *Kubelet) *prober { return &prober{k: k, workers: map[string]*probeWorker{}} }

func probeKey(c podruntime.Container, kind probeKind) string {
	return fmt.Sprintf("%s/%s/%d/%s", c.PodUID, c.Name, c.Attempt, kind)
}

// sync starts the workers of the pod's running containers and stops
// those of attempts that have ended.
func (p *prober) sync(pod *corev1.Pod, cs []podruntime.Container) {
	want := map[string]bool{}
	for _, c := range cs {
		spec := findContainer(pod, c.Name)
		if c.State != podruntime.Running || spec == nil {
			continue
		}
		for kind, probe := range map[probeKind]*corev1.Probe{liveness: spec.LivenessProbe, readiness: spec.ReadinessProbe, startup: spec.StartupProbe} {
			if probe == nil {
				continue
			}
			key := probeKey(c, kind)
			want[key] = true
			p.mu.Lock()
			if p.workers[key] == nil {
				ctx, cancel := context.WithCancel(context.Background())
				w := &probeWorker{cancel: cancel, now: make(chan struct{}, 1)}
				p.workers[key] = w
				go p.run(ctx, w, pod, spec, c, kind, probe)
			}
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		if strings.HasPrefix(key, string(pod.UID)+"/") && !want[key] {
			w.cancel()
			delete(p.workers, key)
		}
	}
}

func (p *prober) get(c podruntime.Container, kind probeKind) result {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.workers[probeKey(c, kind)]; w != nil {
		return w.result
	}
	return unknown
}

// runNow has the container's probe of the kind run at once, if it has
// one.
func (p *prober) runNow(c podruntime.Container, kind probeKind) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.workers[probeKey(c, kind)]; w != nil {
		select {
		case w.now <- struct{}{}:
		default: // one is due already
		}
	}
}

func (p *prober) started(pod *corev1.Pod, spec *corev1.Container, c podruntime.Container) bool {
	return spec.StartupProbe == nil || p.get(c, startup) == success
}

func (p *prober) ready(pod *corev1.Pod, spec *corev1.Container, c podruntime.Container) bool {
	return spec.ReadinessProbe == nil || p.get(c, readiness) == success
}

// failedLiveness says whether a container is to be killed: its liveness
// probe, or its startup probe, has failed failureThreshold times.
func (p *prober) failedLiveness(c podruntime.Container) bool {
	return p.get(c, liveness) == failure || p.get(c, startup) == failure
}

func (p *prober) stopPod(uid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		if strings.HasPrefix(key, uid+"/") {
			w.cancel()
			delete(p.workers, key)
		}
	}
}

func (p *prober) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		w.cancel()
		delete(p.workers, key)
	}
}

// run probes every periodSeconds after initialDelaySeconds, turning the
// results into one by the thresholds. Liveness and readiness wait for
// the startup probe to succeed; a startup probe stops once it has.
func (p *prober) run(ctx context.Context, w *probeWorker, pod *corev1.Pod, spec *corev1.Container, c podruntime.Container, kind probeKind, probe *corev1.Probe) {
	period := time.Duration(max(probe.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(probe.TimeoutSeconds, 1)) * time.Second
	failThreshold, okThreshold := max(int(probe.FailureThreshold), 1), max(int(probe.SuccessThreshold), 1)
	if probe.FailureThreshold == 0 {
		failThreshold = 3
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(probe.InitialDelaySeconds) * time.Second):
	}
	fails, oks := 0, 0
	for {
		if kind == startup || p.started(pod, spec, c) {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			err := p.k.probe(pctx, pod, c, probe.ProbeHandler, spec)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				fails, oks = 0, oks+1
			} else {
				fails, oks = fails+1, 0
			}
			now := unknown
			switch {
			case oks >= okThreshold:
				now = success
			case fails >= failThreshold:
				now = failure
			}
			p.mu.Lock()
			changed := now != unknown && now != w.result
			if changed {
				w.result = now
			}
			p.mu.Unlock()
			if changed {
				if now == failure {
					p.k.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %v", capitalized(kind), err)
				}
				if p.k.cfg.Resync != nil {
					p.k.cfg.Resync(pod.Namespace, pod.Name)
				}
			}
			if kind == startup && now == success {
				// The kubelet's next pod sync finds the container
				// started and not yet ready, and runs its readiness
				// probe at once (prober_manager's manual trigger):
				// a long readiness period does not hold a container
				// that has just started back.
				p.runNow(c, readiness)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		case <-w.now:
		}
	}
}

func capitalized(k probeKind) string { return string(k[0]-'a'+'A') + string(k[1:]) }

// probe runs a probe's (or a hook's) action once against a container.
func (k *Kubelet) probe(ctx context.Context, pod *corev1.Pod, c podruntime.Container, h corev1.ProbeHandler, spec *corev1.Container) error {
	uid := string(pod.UID)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return k.cfg.Runtime.Dial(ctx, uid, network, addr)
	}
	sb, err := k.cfg.Runtime.Sandbox(uid)
	if err != nil {
		return err
	}
	host := sb.IP.String()
	if sb.HostNetwork {
		host = k.cfg.NodeIP.String()
	}
	switch {
	case h.Exec != nil:
		var out limitedBuffer
		return k.cfg.Runtime.Exec(ctx, c, runc.Process{Args: h.Exec.Command, Stdout: &out, Stderr: &out})
	case h.HTTPGet != nil:
		g := h.HTTPGet
		port, err := portNumber(g.Port, spec)
		if err != nil {
			return err
		}
		if g.Host != "" {
			host = g.Host
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: g.Path}
		if u.Path == "" {
			u.Path = "/"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/1.37")
		for _, hd := range g.HTTPHeaders {
			req.Header.Set(hd.Name, hd.Value)
		}
		client := &http.Client{
			Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
			// The kubelet follows redirects to the same host only;
			// others are successes.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.CopyN(io.Discard, resp.Body, 10<<10)
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case h.TCPSocket != nil:
		port, err := portNumber(h.TCPSocket.Port, spec)
		if err != nil {
			return err
		}
		if h.TCPSocket.Host != "" {
			host = h.TCPSocket.Host
		}
		conn, err := dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case h.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(host, strconv.Itoa(int(h.GRPC.Port))),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) }))
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ptr.Deref(h.GRPC.Service, "")})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("service unhealthy (responded with %q)", resp.Status)
		}
		return nil
	}
	return fmt.Errorf("the probe has no action")
}

// portNumber resolves a probe's port, by number or by the container's
// port name.
func portNumber(p intstr.IntOrString, spec *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("the container has no port named %q", p.StrVal)
}

// runHook runs a lifecycle hook; a failure is an event, and an error.
func (k *Kubelet) runHook(ctx context.Context, pod *corev1.Pod, c podruntime.Container, h *corev1.LifecycleHandler, name string) error {
	if h.Sleep != nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
		return nil
	}
	spec := findContainer(pod, c.Name)
	if spec == nil {
		return nil
	}
	err := k.probe(ctx, pod, c, corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}, spec)
	if err != nil {
		k.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, "Failed"+name+"Hook", "%s hook of container %s failed: %v", name, c.Name, err)
	}
	return err
}

// limitedBuffer keeps the first 10 KiB of what is written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 10<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
