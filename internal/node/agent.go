// Package node is the node agent: it joins a cluster the way a kubeadm worker
// does (token discovery with CA pinning, then kubelet TLS bootstrap through a
// CSR that kube-controller-manager approves and signs), registers its Node,
// renews its Lease, and runs the pods the scheduler binds to it through a
// Runtime. The engine runs agents for its node pools; `kubeyard node join`
// runs one on its own, as on another machine.
package node

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/kubelet"
	"github.com/kubeyard/kubeyard/internal/kubeletapi"
	"github.com/kubeyard/kubeyard/internal/pki"
)

// Config configures an Agent.
type Config struct {
	Name string
	// Dir holds the node's kubelet.conf.
	Dir        string
	Join       join.Config
	InternalIP net.IP
	// KubeletIP is the loopback address reported as the node's Hostname
	// address, the only one kube-apiserver dials (--kubelet-preferred-
	// address-types=Hostname): the simulated InternalIP is never dialled.
	KubeletIP net.IP
	// ExternalIP, if set, is reported as the node's ExternalIP.
	ExternalIP net.IP
	Labels     map[string]string
	// Capacity of the node (defaults: 2 CPUs, 4Gi, 110 pods).
	CPU, Memory string
	MaxPods     int
	Version     string // reported kubelet version
	// Pods runs the node's pods for real (internal/kubelet over a
	// podruntime); without it the node is simulated: its pods are
	// Running at once, and no process runs.
	Pods kubelet.Runtime
	// AllowPrivileged lets pods reach into the machine (see
	// kubelet.Config).
	AllowPrivileged bool
	// ClusterDNS is the resolver pods are given.
	ClusterDNS []string
	// ApproveServingCSR approves the kubelet's serving certificate
	// request (the engine does, as GKE); without it the kubelet API's
	// certificate is self-signed.
	ApproveServingCSR func(ctx context.Context, csrName string) error
	// OnPodCIDR is told the node's pod range once it has one, before
	// any pod runs (the VPC routes it to the node).
	OnPodCIDR func(netip.Prefix) error
	Clock     clock.Clock
	Logger    *slog.Logger
	// LeaseDuration and heartbeats, as the kubelet's defaults.
	LeaseDuration time.Duration
	// Fleet, for a simulated node, is what the cluster's simulated nodes
	// share: the node then acts through the fleet's client and has no
	// credentials of its own (no join).
	Fleet *Fleet
}

// Agent is one node.
type Agent struct {
	cfg    Config
	client kubernetes.Interface
	cancel context.CancelFunc
	done   sync.WaitGroup
	ready  chan struct{}
	err    chan error

	mu   sync.Mutex
	uid  types.UID // of the Node registered
	cidr *net.IPNet
	ips  map[string]string // simulated pods: pod IP -> pod key (namespace/name)
	// kubelet runs real pods (nil: simulated).
	kubelet *kubelet.Kubelet
	api     *kubeletapi.Server
	// pods is the node's own watch of its pods (nil in a fleet).
	pods cache.SharedIndexInformer
}

// New returns an Agent with defaults filled in.
func New(cfg Config) (*Agent, error) {
	if cfg.Name == "" {
		return nil, errors.New("node: a name is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = &clock.Offset{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CPU == "" {
		cfg.CPU = "2"
	}
	if cfg.Memory == "" {
		cfg.Memory = "4Gi"
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = 110
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 40 * time.Second
	}
	if cfg.Fleet != nil && cfg.Pods != nil {
		return nil, fmt.Errorf("node %s: only simulated nodes belong to a fleet", cfg.Name)
	}
	cfg.Join.NodeName = cfg.Name
	return &Agent{cfg: cfg, ready: make(chan struct{}), err: make(chan error, 1), ips: map[string]string{}}, nil
}

// KubeconfigPath is where the node keeps its credentials.
func (a *Agent) KubeconfigPath() string { return filepath.Join(a.cfg.Dir, "kubelet.conf") }

// Start joins the cluster (unless the node already has credentials),
// registers the Node and starts the lease and pod loops. It returns once the
// Node is registered.
func (a *Agent) Start(ctx context.Context) error {
	if a.cfg.Fleet != nil {
		return a.startInFleet(ctx)
	}
	kubeconfig, err := os.ReadFile(a.KubeconfigPath())
	if errors.Is(err, os.ErrNotExist) {
		if kubeconfig, err = join.Worker(ctx, a.cfg.Join); err != nil {
			return fmt.Errorf("node %s: join: %w", a.cfg.Name, err)
		}
		if err := pki.WriteFile(a.KubeconfigPath(), kubeconfig); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("node %s: %w", a.cfg.Name, err)
	}
	restCfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return fmt.Errorf("node %s: kubeconfig: %w", a.cfg.Name, err)
	}
	restCfg.QPS, restCfg.Burst = 50, 100
	restCfg.Dial = join.DialFrom(a.cfg.Join.SourceIP)
	if a.client, err = kubernetes.NewForConfig(restCfg); err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		return fmt.Errorf("node %s: register: %w", a.cfg.Name, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.Name).String()
	}))
	pods := factory.Core().V1().Pods()
	a.pods = pods.Informer() // registered before the factory starts
	if a.cfg.Pods != nil {
		if err := a.startKubeletAPI(ctx, pods.Lister()); err != nil {
			cancel()
			return fmt.Errorf("node %s: kubelet API: %w", a.cfg.Name, err)
		}
	}
	a.done.Add(2)
	go a.leaseLoop(runCtx)
	go a.podLoop(runCtx, factory, pods)
	return nil
}

// startInFleet registers the Node through the fleet's client and hands
// its pods to the fleet.
func (a *Agent) startInFleet(ctx context.Context) error {
	var err error
	if a.client, err = a.cfg.Fleet.Client(); err != nil {
		return fmt.Errorf("node %s: %w", a.cfg.Name, err)
	}
	if err := a.register(ctx); err != nil {
		return fmt.Errorf("node %s: register: %w", a.cfg.Name, err)
	}
	if err := a.cfg.Fleet.add(ctx, a); err != nil {
		a.cfg.Fleet.remove(a)
		return fmt.Errorf("node %s: %w", a.cfg.Name, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.done.Add(1)
	go a.leaseLoop(runCtx)
	return nil
}

// Fleet is the fleet the node is part of (a simulated node's), or nil.
func (a *Agent) Fleet() *Fleet { return a.cfg.Fleet }

// Pods are the pods bound to the node as its watch has them, without a
// request to the API server; ok is false until the watch has listed them.
func (a *Agent) Pods() (pods []*corev1.Pod, ok bool) {
	if a.cfg.Fleet != nil {
		return a.cfg.Fleet.pods(a.cfg.Name)
	}
	if a.pods == nil || !a.pods.HasSynced() {
		return nil, false
	}
	for _, o := range a.pods.GetStore().List() {
		pods = append(pods, o.(*corev1.Pod))
	}
	return pods, true
}

// Close stops the agent's loops. The Node stays; it goes NotReady once its
// lease runs out, as a machine that was switched off.
func (a *Agent) Close() {
	if a.cfg.Fleet != nil {
		a.cfg.Fleet.remove(a)
	}
	if a.api != nil {
		_ = a.api.Close()
		a.api = nil
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.done.Wait()
}

func (a *Agent) nodeObject() *corev1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname": a.cfg.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(a.cfg.CPU),
		corev1.ResourceMemory:           resource.MustParse(a.cfg.Memory),
		corev1.ResourcePods:             *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	addresses := []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: a.cfg.InternalIP.String()},
		{Type: corev1.NodeHostName, Address: a.kubeletAddress()},
	}
	if a.cfg.ExternalIP != nil {
		addresses = append(addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: a.cfg.ExternalIP.String()})
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.Name, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity:        capacity,
			Allocatable:     capacity,
			Addresses:       addresses,
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          a.cfg.Version,
				OperatingSystem:         "linux",
				Architecture:            "amd64",
				OSImage:                 a.osImage(),
				KernelVersion:           kernelVersion(),
				ContainerRuntimeVersion: a.runtimeVersion(),
			},
			Conditions: a.conditions(),
		},
	}
}

func (a *Agent) kubeletAddress() string {
	if a.cfg.KubeletIP != nil {
		return a.cfg.KubeletIP.String()
	}
	return a.cfg.Name
}

func (a *Agent) conditions() []corev1.NodeCondition {
	now := metav1.NewTime(a.cfg.Clock.Now())
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
	}
}

// register creates the Node, or marks an existing one Ready again.
func (a *Agent) register(ctx context.Context) error {
	// The status goes with the Node, as the kubelet's first one does.
	n, err := a.client.CoreV1().Nodes().Create(ctx, a.nodeObject(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		n, err = a.heartbeat(ctx)
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.uid = n.UID
	a.mu.Unlock()
	return nil
}

// heartbeat posts the node's status as the kubelet does, with a patch of
// the status alone: kube-controller-manager writes to the Node too (pod
// CIDR, taints), and a full update carrying a stale copy of its taints would
// be refused by NodeRestriction.
func (a *Agent) heartbeat(ctx context.Context) (*corev1.Node, error) {
	want := a.nodeObject().Status
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"conditions":      want.Conditions,
		"addresses":       want.Addresses,
		"capacity":        want.Capacity,
		"allocatable":     want.Allocatable,
		"nodeInfo":        want.NodeInfo,
		"daemonEndpoints": want.DaemonEndpoints,
	}})
	if err != nil {
		return nil, err
	}
	return a.client.CoreV1().Nodes().Patch(ctx, a.cfg.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
}

// leaseLoop renews the node's Lease every quarter of its duration, as the
// kubelet does, and posts a status heartbeat every minute.
func (a *Agent) leaseLoop(ctx context.Context) {
	defer a.done.Done()
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	lastStatus := time.Now()        // register posted it
	var lease *coordinationv1.Lease // the last one written: a renewal is one update
	for {
		now := metav1.NewMicroTime(a.cfg.Clock.Now())
		var err error
		if lease == nil {
			// Created first, owned by the Node registered (a new node has
			// none); an existing one is read, then renewed.
			a.mu.Lock()
			uid := a.uid
			a.mu.Unlock()
			lease, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: a.cfg.Name, Namespace: corev1.NamespaceNodeLease,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.cfg.Name, UID: uid}}},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity:       ptr.To(a.cfg.Name),
					LeaseDurationSeconds: ptr.To(int32(a.cfg.LeaseDuration / time.Second)),
					RenewTime:            &now,
				},
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				if lease, err = leases.Get(ctx, a.cfg.Name, metav1.GetOptions{}); err == nil {
					lease.Spec.RenewTime = &now
					lease, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
				}
			}
		} else {
			lease.Spec.RenewTime = &now
			lease, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		if err != nil {
			lease = nil // read again at the next renewal
			if ctx.Err() == nil {
				a.cfg.Logger.Warn("renew lease", "node", a.cfg.Name, "err", err)
			}
		}
		if time.Since(lastStatus) > time.Minute {
			if _, err := a.heartbeat(ctx); err == nil {
				lastStatus = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.cfg.LeaseDuration / 4):
		}
	}
}

// podLoop runs the pods bound to this node, a few at a time: a pod that
// stops gracefully holds its worker, not the others.
func (a *Agent) podLoop(ctx context.Context, factory informers.SharedInformerFactory, pods coreinformers.PodInformer) {
	defer a.done.Done()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	_, _ = pods.Informer().AddEventHandler(kubeletHandler(enqueue))
	synced := []cache.InformerSynced{pods.Informer().HasSynced}
	if a.cfg.Pods != nil {
		// Services, for the variables containers get: every namespace's.
		svcFactory := informers.NewSharedInformerFactory(a.client, 0)
		services := svcFactory.Core().V1().Services()
		synced = append(synced, services.Informer().HasSynced)
		svcFactory.Start(ctx.Done())
		a.kubelet = a.newKubelet(services.Lister(), func(ns, name string) { queue.Add(ns + "/" + name) })
		defer a.kubelet.Close()
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	if a.kubelet == nil {
		all, _ := pods.Lister().List(everything)
		a.adoptSimulated(all)
	} else {
		go a.removeOrphans(ctx, pods.Lister())
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	get := func(ns, name string) (*corev1.Pod, error) { return pods.Lister().Pods(ns).Get(name) }
	var workers sync.WaitGroup
	for range podWorkers {
		workers.Go(func() {
			for {
				key, quit := queue.Get()
				if quit {
					return
				}
				next, err := a.syncPod(ctx, get, key)
				switch {
				case err != nil && ctx.Err() == nil:
					a.cfg.Logger.Debug("sync pod", "node", a.cfg.Name, "pod", key, "err", err)
					queue.AddRateLimited(key)
				case next > 0:
					queue.Forget(key)
					queue.AddAfter(key, next)
				default:
					queue.Forget(key)
				}
				queue.Done(key)
			}
		})
	}
	workers.Wait()
}

// podWorkers is how many pods the agent syncs at once.
const podWorkers = 4

// Rotate is the node's part of a cluster CA rotation: it makes the node
// trust caPEM and, with renew, rotates its client certificate (a CSR signed
// by the cluster, as the kubelet rotates it) unless issuer signed the one
// it has. Then the agent reconnects with its new credentials. The Node and
// its pods stay.
func (a *Agent) Rotate(ctx context.Context, caPEM []byte, renew bool, issuer *x509.Certificate) error {
	if a.cfg.Fleet != nil {
		if err := a.cfg.Fleet.reconnect(caPEM); err != nil {
			return fmt.Errorf("node %s: %w", a.cfg.Name, err)
		}
		a.Close()
		return a.Start(ctx)
	}
	cfg, err := clientcmd.LoadFromFile(a.KubeconfigPath())
	if err != nil {
		return fmt.Errorf("node %s: %w", a.cfg.Name, err)
	}
	for _, auth := range cfg.AuthInfos {
		cert, err := pki.ParseCert(auth.ClientCertificateData)
		if !renew || (err == nil && cert.CheckSignatureFrom(issuer) == nil) {
			continue
		}
		kp, err := join.NodeClientCert(ctx, a.client, a.cfg.Name)
		if err != nil {
			return fmt.Errorf("node %s: rotate client certificate: %w", a.cfg.Name, err)
		}
		if err := kp.Cert.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("node %s: the rotated client certificate is not signed by the new CA yet: %w", a.cfg.Name, err)
		}
		keyPEM, err := kp.KeyPEM()
		if err != nil {
			return err
		}
		auth.ClientCertificateData, auth.ClientKeyData = kp.CertPEM(), keyPEM
	}
	for _, c := range cfg.Clusters {
		c.CertificateAuthorityData = caPEM
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	if err := pki.WriteFile(a.KubeconfigPath(), data); err != nil {
		return err
	}
	a.Close()
	return a.Start(ctx)
}
