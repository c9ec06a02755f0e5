package engine

// The rig is a machine for the engine's unit tests: an embedded etcd
// shared by the test binary (each test under a key prefix of its own) and
// a fake runtime. Engines come and go over it as they do over a real
// machine: one can be stopped at any write, as a crash would stop it, and
// the next resumes its work.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/engine/fakeruntime"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/store"
)

var etcd struct {
	once sync.Once
	dir  string
	st   *store.Store
	err  error
	n    atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if etcd.st != nil {
		etcd.st.Close()
		os.RemoveAll(etcd.dir)
	}
	os.Exit(code)
}

// errCrashed is what a crashed engine's writes and calls get.
var errCrashed = errors.New("the engine crashed")

// crashingStore is a store that stops working after a number of commits,
// as the engine's process would stop at a crash: the commit that would
// have been the next one is not made, nor is anything after it.
type crashingStore struct {
	store.KV
	mu      sync.Mutex
	left    int // commits still allowed; -1: no limit
	crashed bool
	commits int
}

func (c *crashingStore) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.crashed
}

// crashAfter lets n more commits through, then crashes.
func (c *crashingStore) crashAfter(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left = n
}

func (c *crashingStore) Commit(ctx context.Context, writes ...store.Write) error {
	c.mu.Lock()
	if !c.crashed && c.left == 0 {
		c.crashed = true
	}
	if c.crashed {
		c.mu.Unlock()
		return errCrashed
	}
	if c.left > 0 {
		c.left--
	}
	c.commits++
	c.mu.Unlock()
	return c.KV.Commit(ctx, writes...)
}

func (c *crashingStore) Get(ctx context.Context, key string, v any) (int64, error) {
	if !c.alive() {
		return 0, errCrashed
	}
	return c.KV.Get(ctx, key, v)
}

func (c *crashingStore) List(ctx context.Context, prefix string) ([]store.Item, error) {
	if !c.alive() {
		return nil, errCrashed
	}
	return c.KV.List(ctx, prefix)
}

type rig struct {
	t   *testing.T
	kv  *store.Store
	rt  *fakeruntime.Runtime
	dir string
	e   *Engine
	cs  *crashingStore

	mu   sync.Mutex
	held map[string]chan struct{} // runtime calls held, until closed
	log  lockedBuffer             // the engines' logs, printed if the test fails
}

// lockedBuffer is a buffer that engines' goroutines can write to at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const (
	project = "p"
	zone    = "us-central1-a"
)

func newRig(t *testing.T) *rig {
	t.Helper()
	etcd.once.Do(func() {
		if etcd.dir, etcd.err = os.MkdirTemp("", "kubeyard-engine-test-"); etcd.err == nil {
			etcd.st, etcd.err = store.Open(context.Background(), store.Config{Dir: etcd.dir, NoSync: true})
		}
	})
	if etcd.err != nil {
		t.Fatal(etcd.err)
	}
	g := &rig{t: t, kv: etcd.st.Sub(fmt.Sprintf("t%d/", etcd.n.Add(1))), rt: fakeruntime.New(), dir: t.TempDir(), held: map[string]chan struct{}{}}
	g.rt.Hook = g.hook
	g.start()
	t.Cleanup(func() {
		g.release()
		g.stop()
		if t.Failed() {
			t.Logf("the engines' log:\n%s", g.log.String())
		}
	})
	return g
}

// hook fails every call of a crashed engine and holds the calls a test
// holds.
func (g *rig) hook(ctx context.Context, call string, s cluster.Spec) error {
	if g.cs != nil && !g.cs.alive() {
		return errCrashed
	}
	g.mu.Lock()
	ch := g.held[call]
	g.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// hold makes runtime call wait until release.
func (g *rig) hold(call string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held[call] = make(chan struct{})
}

func (g *rig) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for call, ch := range g.held {
		close(ch)
		delete(g.held, call)
	}
}

// start starts an engine on the rig.
func (g *rig) start() {
	g.t.Helper()
	g.cs = &crashingStore{KV: g.kv, left: -1}
	logger := slog.New(slog.NewTextHandler(&g.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := New(context.Background(), Config{DataDir: g.dir, BaseURL: "http://engine.test", Store: g.cs, Runtime: g.rt, Logger: logger})
	if err != nil {
		g.t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		g.t.Fatal(err)
	}
	g.e = e
}

// stop stops the engine, leaving its clusters running.
func (g *rig) stop() {
	if g.e != nil {
		g.e.Close(false)
		g.e = nil
	}
}

// restart stops the engine (crashed or not) and starts a new one.
func (g *rig) restart() {
	g.t.Helper()
	g.stop()
	g.start()
}

// eventually waits until cond holds.
func (g *rig) eventually(what string, cond func() error) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// idle says why the engine's state is not at rest, or nil: an operation
// runs, a cluster is busy, or an IP rotation has node pools to recreate.
func (g *rig) idle() error {
	ctx := context.Background()
	ops, err := store.ListAs[operations.Record](ctx, g.kv, "operations/")
	if err != nil {
		return err
	}
	for _, op := range ops {
		if op.Op.Status != "DONE" {
			return fmt.Errorf("operation %s (%s %s) is %s", op.Op.Name, op.Op.OperationType, op.Action, op.Op.Status)
		}
	}
	clusters, err := store.ListAs[ClusterRecord](ctx, g.kv, "clusters/")
	if err != nil {
		return err
	}
	for _, r := range clusters {
		if r.Operation != "" {
			return fmt.Errorf("cluster %s is busy with %s", r.Cluster.Name, r.Operation)
		}
		if r.IPRotation != nil && !r.IPRotation.Completing && (&Engine{}).poolOnOldIP(r) != "" {
			return fmt.Errorf("cluster %s has nodes on the old IP", r.Cluster.Name)
		}
	}
	return nil
}

// settle waits until the engine's state is at rest.
func (g *rig) settle() { g.t.Helper(); g.eventually("settle", g.idle) }

// wait waits for op to be DONE and fails the test on its error.
func (g *rig) wait(op *container.Operation, err error) *container.Operation {
	g.t.Helper()
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done, err := g.e.WaitOperation(ctx, project, op.Location, op.Name)
	if err != nil {
		g.t.Fatal(err)
	}
	if done.Error != nil {
		g.t.Fatalf("%s %s failed: %s", done.OperationType, done.Name, done.Error.Message)
	}
	return done
}

// cluster reads a cluster's record.
func (g *rig) cluster(name string) *ClusterRecord {
	g.t.Helper()
	r, _, err := g.e.getCluster(context.Background(), project, zone, name)
	if err != nil {
		g.t.Fatalf("cluster %s: %v", name, err)
	}
	return r
}

// createCluster creates a zonal cluster with nodes in its default pool.
func (g *rig) createCluster(name string, nodes int64, change ...func(*container.Cluster)) {
	g.t.Helper()
	c := &container.Cluster{Name: name, NodePools: []*container.NodePool{{Name: "default-pool", InitialNodeCount: nodes}}}
	for _, f := range change {
		f(c)
	}
	g.wait(g.e.CreateCluster(context.Background(), project, zone, c))
}

// inUse is what cluster r must hold: its endpoints, its machines' and
// nodes' addresses, and the ranges it claimed.
func inUse(r *ClusterRecord) []string {
	var out []string
	add := func(kind, addr string) {
		if addr != "" {
			out = append(out, "allocations/"+kind+"/"+addr)
		}
	}
	add("endpoint", r.EndpointIP)
	if r.PrivateEndpointIP != r.EndpointIP {
		add("endpoint", r.PrivateEndpointIP)
	}
	if r.IPRotation != nil {
		add("endpoint", r.IPRotation.OldEndpointIP)
	}
	for _, h := range append(slices.Clone(r.HostIPs), r.EtcdHostIPs...) {
		add("host", h)
	}
	add(r.nodeIPKind(), r.InternalEndpointIP)
	nodes := slices.Clone(r.Retiring)
	for _, pool := range r.Nodes {
		nodes = append(nodes, pool...)
	}
	for _, n := range nodes {
		out = append(out, n.allocations(r)...)
	}
	kind := "pods/" + r.Project + "/" + r.Cluster.Network
	for _, cidr := range []string{r.Cluster.ClusterIpv4Cidr, r.Cluster.ServicesIpv4Cidr} {
		if cidr == r.Cluster.ServicesIpv4Cidr && (r.routesBased() || cidr == googleServicesRange) {
			continue // not claimed: inside the pod range, or Google's
		}
		out = append(out, "allocations/"+kind+"/"+slashless(cidr))
	}
	slices.Sort(out)
	return out
}

func slashless(cidr string) string {
	b := []byte(cidr)
	for i := range b {
		if b[i] == '/' {
			b[i] = '_'
		}
	}
	return string(b)
}

// checkConsistent checks what must hold whatever happened: every
// allocation has exactly one owner, a cluster that lists it; every cluster
// holds what it uses and nothing else; what runs is what the records say;
// a routes-based cluster has a route per node and no other.
func (g *rig) checkConsistent() {
	g.t.Helper()
	ctx := context.Background()
	clusters, err := store.ListAs[ClusterRecord](ctx, g.kv, "clusters/")
	if err != nil {
		g.t.Fatal(err)
	}
	items, err := g.kv.List(ctx, "allocations/")
	if err != nil {
		g.t.Fatal(err)
	}
	owner := map[string]string{}
	for _, it := range items {
		owner[it.Key] = string(it.Value)
	}
	listed := map[string]bool{}
	for _, r := range clusters {
		got := slices.Sorted(slices.Values(r.Allocations))
		if want := inUse(r); !slices.Equal(slices.Compact(got), want) {
			g.t.Errorf("cluster %s holds %v, uses %v", r.Cluster.Name, got, want)
		}
		for _, k := range r.Allocations {
			listed[k] = true
			if owner[k] != fmt.Sprintf("%q", r.key()) {
				g.t.Errorf("cluster %s lists %s, owned by %q", r.Cluster.Name, k, owner[k])
			}
		}
		run := g.rt.Cluster(r.Cluster.Name)
		if run == nil {
			g.t.Errorf("cluster %s (%s) is recorded but does not run", r.Cluster.Name, r.Cluster.Status)
			continue
		}
		var want, have []string
		for _, pool := range r.Nodes {
			for _, n := range pool {
				want = append(want, n.Name)
			}
		}
		for n := range run.Nodes {
			have = append(have, n)
		}
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(want, have) {
			g.t.Errorf("cluster %s: nodes %v recorded, %v run", r.Cluster.Name, want, have)
		}
		if r.routesBased() {
			routes, err := g.e.vpc.ListRoutes(ctx, project)
			if err != nil {
				g.t.Fatal(err)
			}
			var got []string
			for _, rt := range routes {
				if rt.Description == "k8s-node-route" {
					got = append(got, rt.Name)
				}
			}
			var wantRoutes []string
			for _, n := range want {
				wantRoutes = append(wantRoutes, r.nodeRouteName(n))
			}
			slices.Sort(got)
			slices.Sort(wantRoutes)
			if !slices.Equal(got, wantRoutes) {
				g.t.Errorf("cluster %s: routes %v, want one per node %v", r.Cluster.Name, got, wantRoutes)
			}
		}
	}
	for k, o := range owner {
		if !listed[k] && o != fmt.Sprintf("%q", sharedEtcdKey) { // the engine's own
			g.t.Errorf("%s is owned by %s, which does not list it", k, o)
		}
	}
	var names []string
	for _, r := range clusters {
		names = append(names, r.Cluster.Name)
	}
	slices.Sort(names)
	if run := g.rt.Clusters(); !slices.Equal(run, names) {
		g.t.Errorf("clusters %v run, %v are recorded", run, names)
	}
}
