// Package engine is kubeyard's Go API: clusters, node pools and operations
// as GKE defines them, stored in etcd and carried out by the cluster runtime.
// The REST handlers, the CLI and the tests are adapters over it.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kubeyard/kubeyard/internal/auth"
	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/clouddns"
	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/flowlog"
	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/logging"
	"github.com/kubeyard/kubeyard/internal/operations"
	"github.com/kubeyard/kubeyard/internal/sharedetcd"
	"github.com/kubeyard/kubeyard/internal/store"
	"github.com/kubeyard/kubeyard/internal/supervisor"
	"github.com/kubeyard/kubeyard/internal/vpc"
)

// KubernetesVersion is the upstream version every cluster runs, and
// Version is how the GKE API names it.
const (
	KubernetesVersion = "1.37.2"
	Version           = KubernetesVersion + "-kubeyard.0"
)

// Config configures an Engine.
type Config struct {
	DataDir string
	// EtcdEndpoints selects an external etcd for the engine's state.
	EtcdEndpoints []string
	// BaseURL is the engine's own address as clients reach it
	// ("http://127.0.0.1:8080"); it appears in selfLinks and is the
	// kube-apiservers' authentication webhook.
	BaseURL string
	// EndpointPool and HostPool are where cluster endpoints and
	// control-plane replicas get their loopback addresses;
	// LoadBalancerPool is where LoadBalancer Services get theirs.
	EndpointPool, HostPool, LoadBalancerPool netip.Prefix
	// EndpointPort is the port of every cluster endpoint (443).
	EndpointPort int
	Identity     auth.Identity
	Clock        *clock.Offset
	Logger       *slog.Logger
	// Binary is the multi-call kubeyard binary (default: this executable).
	Binary string
	// EtcdPrefix is where the engine's keys live in etcd (default
	// store.DefaultPrefix): engines sharing one etcd keep apart by it.
	EtcdPrefix string
	// Store and Runtime replace the engine's own (an etcd it opens and
	// holds, and the machine's cluster runtime): tests run the engine
	// over a fake runtime, and stop it at a chosen write.
	Store   store.KV
	Runtime Runtime
	// Shim is the kubeyard-shim binary (default: beside Binary).
	Shim string
	// AllowPrivilegedPods lets pods reach into the machine: privileged
	// containers, host namespaces, host paths.
	AllowPrivilegedPods bool
	// LogRetention and LogMaxEntries bound the Cloud Logging entries kept
	// (default logging.DefaultRetention and logging.DefaultMaxEntries).
	LogRetention  time.Duration
	LogMaxEntries int
}

// Engine is a running engine.
type Engine struct {
	cfg     Config
	store   store.KV
	owned   *store.Store // the store the engine opened (and holds), or nil
	runtime Runtime

	ops    *operations.Runner
	kinds  operations.Registry
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// held is why the recreation of a pool is held back, by cluster key
	// and pool: what was last reported.
	held map[string]string
	// rotationNudge wakes the IP rotation follower early, dataplaneNudge
	// the one of firewall rules and routes.
	rotationNudge  chan struct{}
	dataplaneNudge chan struct{}
	// lbNudge wakes the follower of LoadBalancer Services: one of them,
	// or their endpoints, changed.
	lbNudge chan struct{}
	// resuming are the clusters Start is bringing back up, by key, each
	// closed when it is done: an operation on one waits for it, or the
	// resume, working from the record it read, would start again what the
	// operation removes.
	resuming map[string]chan struct{}
	vpc      *vpc.Service
	dns      *clouddns.Service
	images   *images.Store
	// snapshots are the store's images unpacked, for containers' root
	// file systems.
	snapshots *images.Snapshots
	logs      *logging.Store
	// flowReporters are the flow-log reporters in use, by network
	// ("P/N"); flowMu makes one report at a time.
	flowMu        sync.Mutex
	flowReporters map[string]*flowlog.Reporter
	// logMu makes one collection of cluster logs at a time.
	logMu sync.Mutex
}

// New opens the store and prepares the runtime; Start resumes work.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("engine: a data dir is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = &clock.Offset{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if !cfg.EndpointPool.IsValid() {
		cfg.EndpointPool = netip.MustParsePrefix("127.10.0.0/16")
	}
	if !cfg.HostPool.IsValid() {
		cfg.HostPool = netip.MustParsePrefix("127.11.0.0/16")
	}
	if !cfg.LoadBalancerPool.IsValid() {
		cfg.LoadBalancerPool = netip.MustParsePrefix("127.12.0.0/16")
	}
	if cfg.EndpointPort == 0 {
		cfg.EndpointPort = 443
	}
	e := &Engine{cfg: cfg, store: cfg.Store, runtime: cfg.Runtime, rotationNudge: make(chan struct{}, 1), dataplaneNudge: make(chan struct{}, 1), lbNudge: make(chan struct{}, 1), held: map[string]string{}, resuming: map[string]chan struct{}{}}
	if e.store == nil {
		// One engine works on a store at a time: two would both supervise
		// every cluster.
		me := store.ThisProcess(strings.TrimPrefix(cfg.BaseURL, "http://"), cfg.DataDir)
		st, err := store.Open(ctx, store.Config{Dir: filepath.Join(cfg.DataDir, "state"), Endpoints: cfg.EtcdEndpoints, Prefix: cfg.EtcdPrefix, Logger: cfg.Logger, Holder: &me})
		if err != nil {
			return nil, err
		}
		e.store, e.owned = st, st
	}
	// Before the API serves: pods and users find the built-in images from
	// the first request on.
	var err error
	if e.images, err = images.Open(filepath.Join(cfg.DataDir, "images")); err == nil {
		err = e.seedImages()
	}
	if err != nil {
		e.closeStore()
		return nil, fmt.Errorf("engine: images: %w", err)
	}
	e.logs, err = logging.Open(ctx, logging.Config{KV: e.store, Clock: cfg.Clock, Logger: cfg.Logger,
		Retention: cfg.LogRetention, MaxEntries: cfg.LogMaxEntries})
	if err != nil {
		e.closeStore()
		return nil, fmt.Errorf("engine: %w", err)
	}
	e.snapshots = &images.Snapshots{Dir: filepath.Join(cfg.DataDir, "snapshots")}
	if e.runtime == nil {
		rt, err := newMachineRuntime(cfg, e.images, e.snapshots)
		if err != nil {
			e.closeStore()
			return nil, err
		}
		e.runtime = rt
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.kinds = e.registry()
	ops, err := operations.New(operations.Config{Store: e.store, Clock: cfg.Clock, Logger: cfg.Logger, Kinds: e.kinds,
		Release: e.releaseCluster,
		// The cluster is idle: an IP rotation may go on at once rather
		// than at the follower's next round.
		Ended: func(*operations.Record) { e.nudgeRotations() }})
	if err != nil {
		e.closeStore()
		return nil, err
	}
	e.ops = ops
	e.vpc = vpc.New(vpc.Config{Store: e.store, Clock: cfg.Clock, BaseURL: cfg.BaseURL + "/compute/v1/", Regions: Regions(), InUse: e.networkUser,
		DataplaneChanged: func(string) { nudge(e.dataplaneNudge) }})
	e.dns = clouddns.New(clouddns.Config{Store: e.store, Clock: cfg.Clock, NetworkExists: func(ctx context.Context, project, name string) bool {
		_, err := e.vpc.GetNetwork(ctx, project, name)
		return err == nil
	}})
	if err := e.loadClock(ctx); err != nil {
		e.closeStore()
		return nil, err
	}
	return e, nil
}

// newMachineRuntime is the runtime that runs clusters on this machine.
// It runs on the machines' (real) clock: kube components judge
// certificates and heartbeats by it. The engine's clock, which can be
// advanced, drives the engine's own decisions.
func newMachineRuntime(cfg Config, store *images.Store, snapshots *images.Snapshots) (*cluster.Runtime, error) {
	sup, err := supervisor.New(supervisor.Config{Binary: cfg.Binary, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	shim := cfg.Shim
	if shim == "" {
		bin := cfg.Binary
		if bin == "" {
			if bin, err = os.Executable(); err != nil {
				return nil, err
			}
		}
		shim = filepath.Join(filepath.Dir(bin), "kubeyard-shim")
	}
	return cluster.New(cluster.Config{
		Supervisor: sup, LoadBalancerDir: filepath.Join(cfg.DataDir, "loadbalancer"),
		RunDir: filepath.Join(cfg.DataDir, "run"), LogDir: filepath.Join(cfg.DataDir, "logs"),
		Logger: cfg.Logger, Version: "v" + KubernetesVersion,
		Pods: &cluster.Pods{
			Images: store, Snapshots: snapshots, Shim: shim,
			Prefix: cluster.EnginePrefix(cfg.DataDir), AllowPrivileged: cfg.AllowPrivilegedPods,
		},
		SharedEtcd: &sharedetcd.Server{
			Dir: filepath.Join(cfg.DataDir, "shared-etcd"), Supervisor: sup,
			RunDir: filepath.Join(cfg.DataDir, "run"), LogDir: filepath.Join(cfg.DataDir, "logs"),
		},
	})
}

// closeStore closes the store if the engine opened it.
func (e *Engine) closeStore() error {
	if e.owned == nil {
		return nil
	}
	return e.owned.Close()
}

// HoldLost is closed if the engine lost its hold on the store (another
// engine may work on it now): the engine must stop.
func (e *Engine) HoldLost() <-chan struct{} {
	if e.owned == nil {
		return nil
	}
	return e.owned.HoldLost()
}

// Start resumes what an earlier engine left: clusters come back up and
// unfinished operations run on. It returns at once; the work goes on in the
// background.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.runtime.Start(ctx); err != nil {
		return fmt.Errorf("engine: %w", err)
	}

	resumed, err := e.ops.Resume(ctx)
	if err != nil {
		return err
	}
	busy := map[string]bool{}
	for _, op := range resumed {
		busy[clusterKey(op.Project, op.Location, op.ClusterName)] = true
	}
	clusters, err := e.listClusters(ctx, "clusters/")
	if err != nil {
		return err
	}
	if all, err := e.images.List(); err == nil {
		e.unpack(all...)
	}
	e.wg.Go(func() { e.followRotations(e.ctx, 2*time.Second) })
	e.wg.Go(func() { e.followDataplane(e.ctx, 5*time.Second) })
	e.wg.Go(func() { e.followFlowLogs(e.ctx, 5*time.Second) })
	e.wg.Go(func() { e.followLoadBalancers(e.ctx, 2*time.Second) })
	e.wg.Go(func() { e.followLogs(e.ctx, 2*time.Second) })
	e.nudgeRotations() // rotations left by an earlier engine go on at once
	for _, r := range clusters {
		if busy[r.key()] || r.Cluster.Status != "RUNNING" {
			continue
		}
		done := make(chan struct{})
		e.mu.Lock()
		e.resuming[r.key()] = done
		e.mu.Unlock()
		e.wg.Go(func() {
			defer func() {
				e.mu.Lock()
				delete(e.resuming, r.key())
				e.mu.Unlock()
				close(done)
			}()
			if err := e.resumeCluster(e.ctx, r); err != nil && e.ctx.Err() == nil {
				e.cfg.Logger.Error("resume cluster", "cluster", r.key(), "err", err)
			}
		})
	}
	return nil
}

// afterResume runs an operation once Start has brought its cluster back
// up (at once when it was not resuming one).
func (e *Engine) afterResume(run func(context.Context, *operations.Record) error) func(context.Context, *operations.Record) error {
	return func(ctx context.Context, op *operations.Record) error {
		e.mu.Lock()
		done := e.resuming[clusterKey(op.Project, op.Location, op.ClusterName)]
		e.mu.Unlock()
		if done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return run(ctx, op)
	}
}

// resumeCluster brings a cluster's control plane and node agents up as the
// record says: after an engine restart, and first thing in an operation
// that may resume one cut off by a crash.
func (e *Engine) resumeCluster(ctx context.Context, r *ClusterRecord) error {
	s := e.spec(r)
	if r.CARotation != nil {
		if err := e.runtime.WriteCAPhase(s, r.CARotation); err != nil {
			return err
		}
	}
	if err := e.runtime.EnsureControlPlane(ctx, s); err != nil {
		return err
	}
	for _, p := range r.Cluster.NodePools {
		if err := e.runtime.EnsureNodes(ctx, s, e.nodes(r, p), r.BootstrapToken); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the engine. With stopClusters, every control-plane process is
// stopped too (a clean shutdown); otherwise they run on, for the next engine
// to adopt.
func (e *Engine) Close(stopClusters bool) error {
	e.cancel()
	e.ops.Close()
	e.wg.Wait()
	e.runtime.Close(stopClusters)
	return e.closeStore()
}

// Logs is the projects' Cloud Logging entries.
func (e *Engine) Logs() *logging.Store { return e.logs }

// VPC is the projects' VPC networks (the Compute API's networks and
// subnetworks).
func (e *Engine) VPC() *vpc.Service { return e.vpc }

// DNS is the projects' Cloud DNS zones.
func (e *Engine) DNS() *clouddns.Service { return e.dns }

// networkUser names a cluster of the project in the network (and, when
// subnetwork is set, in that subnetwork), or "".
func (e *Engine) networkUser(ctx context.Context, project, network, subnetwork string) (string, error) {
	clusters, err := e.listClusters(ctx, "clusters/"+project+"/")
	if err != nil {
		return "", err
	}
	for _, r := range clusters {
		c := r.Cluster
		if vpc.ResourceName(c.Network) == network && (subnetwork == "" || vpc.ResourceName(c.Subnetwork) == subnetwork) {
			return fmt.Sprintf("projects/%s/locations/%s/clusters/%s", project, r.Location, c.Name), nil
		}
	}
	return "", nil
}

// Identity is the engine's access token identity.
func (e *Engine) Identity() auth.Identity { return e.cfg.Identity }

// Clock is the engine's clock.
func (e *Engine) Clock() *clock.Offset { return e.cfg.Clock }
