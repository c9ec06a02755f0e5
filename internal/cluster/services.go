package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/internal/loadbalancer"
	"github.com/kubeyard/kubeyard/internal/poll"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// A LoadBalancer Service gets its load balancer from the engine, as a
// cloud provider's service controller gives it one: an address of its
// own, where the engine's load balancer process serves the Service's
// ports (TCP and UDP), forwarding to its ready endpoints, which it dials
// inside the cluster's VPC network. An external one listens on a
// loopback address of the machine; an internal one (the annotation
// networking.gke.io/load-balancer-type: "Internal") on an address of the
// subnetwork, inside the network. The engine picks the addresses and
// keeps the records; this file serves and releases them.

// Annotations and finalizer, as GKE's service controller uses them.
const (
	LoadBalancerTypeAnnotation = "networking.gke.io/load-balancer-type"
	loadBalancerFinalizer      = "service.kubernetes.io/load-balancer-cleanup"
)

// ServiceLB is a LoadBalancer Service as its load balancer serves it.
type ServiceLB struct {
	Namespace, Name, UID string
	// Internal: an internal load balancer, inside the VPC network.
	Internal bool
	Ports    []LBPort
	// SourceRanges are the client sources admitted (none: every one).
	SourceRanges []string
	// RequestedIP is spec.loadBalancerIP, the address asked for ("": any).
	RequestedIP string
	// Releasing: the Service goes, or is no longer of type LoadBalancer;
	// its load balancer must go (its finalizer holds it until then).
	Releasing bool
}

// LBPort is one port of a load balancer and the ready endpoints behind it.
type LBPort struct {
	Protocol string   `json:"protocol"` // TCP or UDP
	Port     int32    `json:"port"`
	Backends []string `json:"-"` // host:port
}

// serviceWatch is the cache of a cluster's Services and EndpointSlices.
type serviceWatch struct {
	// client is what the watch connects with (endpoint and admin
	// credentials): a rotation changes it, and the watch starts again.
	client   string
	cancel   context.CancelFunc
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	events   corelisters.EventLister // for the cluster's logs (Events)
	// changed is told of every change of a Service or EndpointSlice.
	changed atomic.Pointer[func()]
	synced  []cache.InformerSynced
}

// serviceWatchOf is the cluster's watch (nil: none yet).
func (r *Runtime) serviceWatchOf(s Spec) *serviceWatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[s.ID]
}

// FollowServices watches the cluster's Services and EndpointSlices,
// calling changed (if set) after every change (once they are first listed
// too), and its Events. It is idempotent, and starts again with new
// credentials or endpoint; Destroy and Close stop it.
func (r *Runtime) FollowServices(s Spec, changed func()) error {
	h, _ := s.pkiHost()
	creds, err := os.ReadFile(filepath.Join(s.HostDir(h), "super-admin.conf"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(creds)
	identity := s.Endpoint() + "/" + hex.EncodeToString(sum[:8])
	r.mu.Lock()
	old := r.services[s.ID]
	r.mu.Unlock()
	if old != nil && old.client == identity {
		if changed != nil {
			old.changed.Store(&changed)
		}
		return nil
	}
	if old != nil {
		r.stopServices(s.ID)
	}
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	svcs, eps, evs := factory.Core().V1().Services(), factory.Discovery().V1().EndpointSlices(), factory.Core().V1().Events()
	w := &serviceWatch{client: identity, cancel: cancel, services: svcs.Lister(), slices: eps.Lister(), events: evs.Lister(),
		synced: []cache.InformerSynced{svcs.Informer().HasSynced, eps.Informer().HasSynced, evs.Informer().HasSynced}}
	if changed != nil {
		w.changed.Store(&changed)
	}
	tell := func() {
		if f := w.changed.Load(); f != nil {
			(*f)()
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { tell() },
		UpdateFunc: func(any, any) { tell() },
		DeleteFunc: func(any) { tell() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcs.Informer(), eps.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			cancel()
			return err
		}
	}
	r.mu.Lock()
	if _, ok := r.services[s.ID]; ok {
		r.mu.Unlock()
		cancel()
		return nil
	}
	r.services[s.ID] = w
	r.mu.Unlock()
	factory.Start(ctx.Done())
	return nil
}

func (w *serviceWatch) hasSynced() bool {
	for _, synced := range w.synced {
		if !synced() {
			return false
		}
	}
	return true
}

// stopServices stops the service watches of clusters whose ID has the
// prefix.
func (r *Runtime) stopServices(prefix string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.services {
		if strings.HasPrefix(id, prefix) {
			w.cancel()
			delete(r.services, id)
		}
	}
}

// LoadBalancerServices are the cluster's Services that have, or must
// have, a load balancer of the engine's; ok is false until the cache has
// first listed them.
func (r *Runtime) LoadBalancerServices(s Spec) (out []ServiceLB, ok bool) {
	w := r.serviceWatchOf(s)
	if w == nil || !w.hasSynced() {
		return nil, false
	}
	svcs, err := w.services.List(labels.Everything())
	if err != nil {
		return nil, false
	}
	for _, svc := range svcs {
		wanted := svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil
		if !wanted && !slices.Contains(svc.Finalizers, loadBalancerFinalizer) {
			continue
		}
		lb := ServiceLB{Namespace: svc.Namespace, Name: svc.Name, UID: string(svc.UID),
			Internal:     strings.EqualFold(svc.Annotations[LoadBalancerTypeAnnotation], "Internal"),
			SourceRanges: svc.Spec.LoadBalancerSourceRanges, RequestedIP: svc.Spec.LoadBalancerIP,
			Releasing: !wanted || svc.DeletionTimestamp != nil}
		ready := readyEndpoints(w.slices, svc)
		for _, p := range svc.Spec.Ports {
			lb.Ports = append(lb.Ports, LBPort{Protocol: string(p.Protocol), Port: p.Port, Backends: ready[p.Name+"/"+string(p.Protocol)]})
		}
		out = append(out, lb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, true
}

// readyEndpoints are a Service's ready endpoints, "IP:port" by port name
// and protocol, from its EndpointSlices.
func readyEndpoints(lister discoverylisters.EndpointSliceLister, svc *corev1.Service) map[string][]string {
	out := map[string][]string{}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	slices, _ := lister.EndpointSlices(svc.Namespace).List(sel)
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			name, proto := "", corev1.ProtocolTCP
			if p.Name != nil {
				name = *p.Name
			}
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, a := range ep.Addresses {
					key := name + "/" + string(proto)
					out[key] = append(out[key], net.JoinHostPort(a, fmt.Sprint(*p.Port)))
				}
			}
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// lbFrontendPrefix begins the frontend files of a Service's load balancer.
func lbFrontendPrefix(s Spec, uid string) string { return "svc-" + s.ID + "-" + uid + "-" }

// ServeLoadBalancer serves lb at ip: a frontend for each of its ports,
// forwarding to its ready endpoints; then the Service holds the load
// balancer's finalizer and shows the address in its status. It is
// idempotent.
func (r *Runtime) ServeLoadBalancer(ctx context.Context, s Spec, lb ServiceLB, ip netip.Addr) error {
	// Read from the watch's cache: this runs every round for every load
	// balancer, and writes only when something is to change (a stale
	// copy's write conflicts, and the next round does it).
	svc, err := r.cachedService(ctx, s, lb.Namespace, lb.Name)
	if err != nil {
		return err
	}
	services := func() (typedcorev1.ServiceInterface, error) {
		client, err := r.AdminClient(s)
		if err != nil {
			return nil, err
		}
		return client.CoreV1().Services(lb.Namespace), nil
	}
	if !slices.Contains(svc.Finalizers, loadBalancerFinalizer) {
		svcs, err := services()
		if err != nil {
			return err
		}
		svc.Finalizers = append(svc.Finalizers, loadBalancerFinalizer)
		if svc, err = svcs.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	network := r.networkNS(s.Network)
	listenNS := ""
	if lb.Internal {
		listenNS = network
		if err := vpcnet.AddService(network, ip); err != nil {
			return err
		}
	}
	prefix := lbFrontendPrefix(s, lb.UID)
	want := map[string]bool{}
	for _, p := range lb.Ports {
		name := prefix + strings.ToLower(p.Protocol) + "-" + fmt.Sprint(p.Port)
		want[name] = true
		var backends []loadbalancer.Backend
		for _, b := range p.Backends {
			backends = append(backends, loadbalancer.Backend{Addr: b})
		}
		fe := loadbalancer.Frontend{
			Addr: net.JoinHostPort(ip.String(), fmt.Sprint(p.Port)), Namespace: listenNS, Protocol: strings.ToLower(p.Protocol),
			BackendNamespace: network, Unchecked: true, Backends: backends, Allow: lb.SourceRanges,
		}
		if err := loadbalancer.WriteFrontend(r.cfg.LoadBalancerDir, name, fe); err != nil {
			return err
		}
	}
	if err := r.removeFrontends(ctx, prefix, want); err != nil {
		return err
	}
	for name := range want {
		if err := loadbalancer.WaitApplied(ctx, r.cfg.LoadBalancerDir, name); err != nil {
			return err
		}
	}
	ingress := []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}
	if len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != ip.String() {
		svcs, err := services()
		if err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = ingress
		if _, err := svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// cachedService is a copy of the Service from the cluster's watch, or
// from its API server when there is no watch.
func (r *Runtime) cachedService(ctx context.Context, s Spec, namespace, name string) (*corev1.Service, error) {
	w := r.serviceWatchOf(s)
	if w != nil {
		svc, err := w.services.Services(namespace).Get(name)
		if err != nil {
			return nil, err
		}
		return svc.DeepCopy(), nil
	}
	client, err := r.AdminClient(s)
	if err != nil {
		return nil, err
	}
	return client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
}

// LoadBalancerFailed tells the Service's users why it has no load
// balancer, as the upstream service controller does: a Warning event,
// SyncLoadBalancerFailed, once for each message (the watch's cache of
// Events says whether it was told already).
func (r *Runtime) LoadBalancerFailed(ctx context.Context, s Spec, lb ServiceLB, message string) error {
	sum := sha256.Sum256([]byte(lb.UID + "\x00" + message))
	name := lb.Name + "." + hex.EncodeToString(sum[:8])
	w := r.serviceWatchOf(s)
	if w != nil {
		if _, err := w.events.Events(lb.Namespace).Get(name); err == nil {
			return nil
		}
	}
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	now := metav1.NewTime(r.cfg.Clock.Now())
	_, err = client.CoreV1().Events(lb.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: lb.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: lb.Namespace, Name: lb.Name, UID: types.UID(lb.UID)},
		Type:           corev1.EventTypeWarning, Reason: "SyncLoadBalancerFailed", Message: message,
		Source:         corev1.EventSource{Component: "service-controller"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// removeFrontends removes the frontend files with the prefix that keep
// does not name, and waits until the load balancer stops serving them.
func (r *Runtime) removeFrontends(ctx context.Context, prefix string, keep map[string]bool) error {
	names, err := loadbalancer.FrontendNames(r.cfg.LoadBalancerDir, prefix)
	if err != nil {
		return err
	}
	var gone []string
	for _, name := range names {
		if !keep[name] {
			if err := loadbalancer.RemoveFrontend(r.cfg.LoadBalancerDir, name); err != nil {
				return err
			}
			gone = append(gone, name)
		}
	}
	return loadbalancer.WaitRemoved(ctx, r.cfg.LoadBalancerDir, gone...)
}

// ReleaseLoadBalancer stops serving the load balancer of the Service with
// uid at ip (internal: inside the network), then lets the Service go: its
// status loses the address and its finalizer goes, if it still exists.
func (r *Runtime) ReleaseLoadBalancer(ctx context.Context, s Spec, namespace, name, uid string, ip netip.Addr, internal bool) error {
	if err := r.removeFrontends(ctx, lbFrontendPrefix(s, uid), nil); err != nil {
		return err
	}
	if internal && ip.IsValid() {
		if err := vpcnet.RemoveService(r.networkNS(s.Network), ip); err != nil {
			return err
		}
	}
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	svcs := client.CoreV1().Services(namespace)
	return poll.Until(ctx, func(ctx context.Context) error {
		svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil || string(svc.UID) != uid {
			return nil // gone, or another Service of that name
		}
		if len(svc.Status.LoadBalancer.Ingress) > 0 {
			svc.Status.LoadBalancer.Ingress = nil
			if svc, err = svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		if i := slices.Index(svc.Finalizers, loadBalancerFinalizer); i >= 0 {
			svc.Finalizers = slices.Delete(svc.Finalizers, i, i+1)
			_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
		}
		return err
	})
}

// removeServiceFrontends removes every load balancer frontend of the
// cluster's Services (a cluster that goes), and the addresses its
// internal load balancers had in the VPC network.
func (r *Runtime) removeServiceFrontends(s Spec) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := "svc-" + s.ID + "-"
	names, err := loadbalancer.FrontendNames(r.cfg.LoadBalancerDir, prefix)
	if err != nil {
		return err
	}
	internal := map[netip.Addr]string{}
	for _, name := range names {
		if fe, err := loadbalancer.ReadFrontend(r.cfg.LoadBalancerDir, name); err == nil && fe.Namespace != "" {
			if ap, err := netip.ParseAddrPort(fe.Addr); err == nil {
				internal[ap.Addr()] = fe.Namespace
			}
		}
	}
	if err := r.removeFrontends(ctx, prefix, nil); err != nil {
		return err
	}
	for ip, ns := range internal {
		if err := vpcnet.RemoveService(ns, ip); err != nil {
			return err
		}
	}
	return nil
}
