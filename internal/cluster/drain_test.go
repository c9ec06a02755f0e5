package cluster

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// watchedNode is a node agent's watch of its pods, which a test changes.
type watchedNode struct {
	mu   sync.Mutex
	pods map[string]*corev1.Pod
}

func (w *watchedNode) Pods() ([]*corev1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*corev1.Pod
	for _, p := range w.pods {
		out = append(out, p)
	}
	return out, true
}

func (w *watchedNode) remove(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.pods, name)
}

func boundPod(name string, owner string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)}, Spec: corev1.PodSpec{NodeName: "n1"}}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "o", APIVersion: "apps/v1"}}
	}
	return p
}

// drainRig is a drain of node n1 over a fake API server that counts its
// Lists and evictions; an eviction deletes the pod from the API server
// and, later, from the node's watch (as its kubelet would).
type drainRig struct {
	d         *drain
	client    *fake.Clientset
	mu        sync.Mutex
	lists     int
	evictions map[string]int
}

func newDrainRig(t *testing.T, watch *watchedNode, pods ...*corev1.Pod) *drainRig {
	objs := make([]runtime.Object, len(pods))
	for i, p := range pods {
		objs[i] = p
	}
	g := &drainRig{client: fake.NewClientset(objs...), evictions: map[string]int{}}
	g.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		g.mu.Lock()
		g.lists++
		g.mu.Unlock()
		return false, nil, nil
	})
	g.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := a.(k8stesting.CreateAction).GetObject().(metav1.Object).GetName()
		g.mu.Lock()
		g.evictions[name]++
		g.mu.Unlock()
		if err := g.client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "default", name); err != nil {
			t.Errorf("evict %s: %v", name, err)
		}
		if watch != nil {
			time.AfterFunc(50*time.Millisecond, func() { watch.remove(name) })
		}
		return true, nil, nil
	})
	g.d = &drain{client: g.client, node: "n1", logger: slog.New(slog.DiscardHandler)}
	if watch != nil {
		g.d.agent = watch
	}
	return g
}

// rounds runs the drain's rounds until it is done, at most n.
func (g *drainRig) rounds(t *testing.T, n int) int {
	t.Helper()
	for i := 1; i <= n; i++ {
		if g.d.round(context.Background()) == nil {
			return i
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the node is not drained after %d rounds", n)
	return 0
}

// TestDrainReadsTheNodesWatch: a node this engine runs is drained from its
// agent's watch of its pods, each pod evicted once, and a single List
// confirms at the end; DaemonSet pods stay.
func TestDrainReadsTheNodesWatch(t *testing.T) {
	a, b, ds := boundPod("a", "ReplicaSet"), boundPod("b", ""), boundPod("ds", "DaemonSet")
	watch := &watchedNode{pods: map[string]*corev1.Pod{"a": a, "b": b, "ds": ds}}
	g := newDrainRig(t, watch, a, b, ds)
	rounds := g.rounds(t, 100)
	if rounds < 3 {
		t.Errorf("drained in %d rounds: the watch was not waited for", rounds)
	}
	if g.evictions["a"] != 1 || g.evictions["b"] != 1 || g.evictions["ds"] != 0 {
		t.Errorf("evictions %v, want a and b once each", g.evictions)
	}
	if g.lists != 1 {
		t.Errorf("%d Lists over %d rounds, want the one that confirms", g.lists, rounds)
	}
}

// TestDrainConfirmsWithAList: a pod the watch has not seen yet (bound just
// before the cordon) is found by the List that confirms, and evicted.
func TestDrainConfirmsWithAList(t *testing.T) {
	late := boundPod("late", "ReplicaSet")
	g := newDrainRig(t, &watchedNode{pods: map[string]*corev1.Pod{}}, late)
	g.rounds(t, 100)
	if g.evictions["late"] != 1 {
		t.Errorf("evictions %v: the pod the watch missed was left", g.evictions)
	}
}

// TestDrainWithoutAnAgentLists: a node no agent of this engine runs (left
// by an earlier engine) is drained from Lists.
func TestDrainWithoutAnAgentLists(t *testing.T) {
	g := newDrainRig(t, nil, boundPod("a", "ReplicaSet"))
	rounds := g.rounds(t, 100)
	if g.evictions["a"] != 1 || g.lists != rounds {
		t.Errorf("evictions %v, %d Lists in %d rounds", g.evictions, g.lists, rounds)
	}
}
