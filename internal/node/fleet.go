package node

import (
	"context"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Fleet is what the simulated nodes of one cluster share, as KWOK's one
// controller does: a client, one watch of the pods bound to nodes, and the
// workers that sync them, so that a thousand nodes are not a thousand
// connections, watches and goroutine pools. Its nodes have no credentials
// of their own: the fleet's client acts for them.
type Fleet struct {
	connect func() (kubernetes.Interface, error)
	logger  *slog.Logger

	mu     sync.Mutex
	client kubernetes.Interface
	trust  string            // the CA bundle client was made for
	agents map[string]*Agent // by node name
	watch  *fleetWatch       // while there are agents
}

// fleetWatch is one run of the fleet's pod informer and workers.
type fleetWatch struct {
	informer cache.SharedIndexInformer
	queue    workqueue.TypedRateLimitingInterface[podRef]
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

// podRef is a pod of a fleet's node.
type podRef struct{ node, key string }

const byNode = "spec.nodeName"

// fleetWorkers is how many pods a fleet syncs at once.
const fleetWorkers = 16

// NewFleet returns a fleet whose client comes from connect (again after
// a CA rotation).
func NewFleet(connect func() (kubernetes.Interface, error), logger *slog.Logger) *Fleet {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Fleet{connect: connect, logger: logger, agents: map[string]*Agent{}}
}

// Client returns the cluster-admin client the fleet's nodes share,
// connecting first if it has none.
func (f *Fleet) Client() (kubernetes.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.client == nil {
		c, err := f.connect()
		if err != nil {
			return nil, err
		}
		f.client = c
	}
	return f.client, nil
}

// reconnect makes a new client once per CA bundle: the nodes' Rotate
// calls come together, and the first one reconnects the fleet. The
// agents, restarted by their Rotate, pick the new client up.
func (f *Fleet) reconnect(caPEM []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.client != nil && f.trust == string(caPEM) {
		return nil
	}
	c, err := f.connect()
	if err != nil {
		return err
	}
	f.client, f.trust = c, string(caPEM)
	old := f.watch
	if old != nil {
		f.watch = f.newWatch(c)
	}
	f.mu.Unlock()
	if old != nil {
		old.stop() // its workers look agents up: not under the lock
	}
	f.mu.Lock()
	return nil
}

// add makes the fleet sync the agent's pods, once the fleet's cache has
// them: what the agent gave addresses to before a restart is kept first.
func (f *Fleet) add(ctx context.Context, a *Agent) error {
	f.mu.Lock()
	if f.watch == nil {
		f.watch = f.newWatch(f.client)
	}
	w := f.watch
	f.agents[a.cfg.Name] = a
	f.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return ctx.Err()
	}
	pods := f.podsOf(w, a.cfg.Name)
	a.adoptSimulated(pods)
	for _, p := range pods {
		w.queue.Add(podRef{a.cfg.Name, p.Namespace + "/" + p.Name})
	}
	return nil
}

// remove stops syncing the agent's pods; the last one out stops the watch.
func (f *Fleet) remove(a *Agent) {
	f.mu.Lock()
	if f.agents[a.cfg.Name] == a {
		delete(f.agents, a.cfg.Name)
	}
	var w *fleetWatch
	if len(f.agents) == 0 {
		w, f.watch = f.watch, nil
	}
	f.mu.Unlock()
	if w != nil {
		w.stop()
	}
}

func (f *Fleet) agent(name string) *Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agents[name]
}

// pods are the node's pods in the fleet's cache (ok: it has listed them).
func (f *Fleet) pods(node string) ([]*corev1.Pod, bool) {
	f.mu.Lock()
	w := f.watch
	f.mu.Unlock()
	if w == nil || !w.informer.HasSynced() {
		return nil, false
	}
	return f.podsOf(w, node), true
}

func (f *Fleet) podsOf(w *fleetWatch, node string) []*corev1.Pod {
	objs, _ := w.informer.GetIndexer().ByIndex(byNode, node)
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		pods = append(pods, o.(*corev1.Pod))
	}
	return pods
}

// newWatch starts an informer of every bound pod, indexed by node, and the
// workers that hand each pod to its node's agent.
func (f *Fleet) newWatch(client kubernetes.Interface) *fleetWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &fleetWatch{
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[podRef]()),
		cancel: cancel,
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
	}))
	w.informer = factory.Core().V1().Pods().Informer()
	_ = w.informer.AddIndexers(cache.Indexers{byNode: func(obj any) ([]string, error) {
		return []string{obj.(*corev1.Pod).Spec.NodeName}, nil
	}})
	enqueue := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if tomb, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
			pod, ok = tomb.Obj.(*corev1.Pod)
		}
		if !ok || f.agent(pod.Spec.NodeName) == nil {
			return
		}
		w.queue.Add(podRef{pod.Spec.NodeName, pod.Namespace + "/" + pod.Name})
	}
	_, _ = w.informer.AddEventHandler(kubeletHandler(enqueue))
	factory.Start(ctx.Done())
	for range fleetWorkers {
		w.done.Go(func() { f.work(ctx, w) })
	}
	return w
}

// work syncs pods through their node's agent until the watch stops.
func (f *Fleet) work(ctx context.Context, w *fleetWatch) {
	lister := cache.NewGenericLister(w.informer.GetIndexer(), corev1.Resource("pods"))
	for {
		ref, quit := w.queue.Get()
		if quit {
			return
		}
		a := f.agent(ref.node)
		if a == nil {
			w.queue.Forget(ref)
			w.queue.Done(ref)
			continue
		}
		get := func(ns, name string) (*corev1.Pod, error) {
			obj, err := lister.ByNamespace(ns).Get(name)
			if err != nil {
				return nil, err
			}
			pod := obj.(*corev1.Pod)
			if pod.Spec.NodeName != ref.node { // the name is another pod's now
				return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
			}
			return pod, nil
		}
		next, err := a.syncPod(ctx, get, ref.key)
		switch {
		case err != nil && ctx.Err() == nil:
			f.logger.Debug("sync pod", "node", ref.node, "pod", ref.key, "err", err)
			w.queue.AddRateLimited(ref)
		case next > 0:
			w.queue.Forget(ref)
			w.queue.AddAfter(ref, next)
		default:
			w.queue.Forget(ref)
		}
		w.queue.Done(ref)
	}
}

func (w *fleetWatch) stop() {
	w.cancel()
	w.queue.ShutDown()
	w.done.Wait()
}
