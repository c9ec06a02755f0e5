package engine

import (
	"context"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/status"
)

// scenario is one kind of operation, run on a cluster that setup made.
type scenario struct {
	name string
	// setup makes what the operation works on (cluster c1, zonal, with
	// two nodes, unless it says otherwise).
	setup func(g *rig)
	// start asks for the operation.
	start func(ctx context.Context, e *Engine) (*container.Operation, error)
	// hold is a runtime call the operation makes while it runs ("" for a
	// kind born DONE).
	hold string
	// cancellable says whether a cancel stops it.
	cancellable bool
	// check checks what the operation did, once the engine is at rest.
	check func(g *rig)
}

func defaultSetup(g *rig) { g.createCluster("c1", 2) }

func nodesIn(g *rig, name, pool string) int { return len(g.cluster(name).Nodes[pool]) }

func expect(g *rig, ok bool, format string, args ...any) {
	g.t.Helper()
	if !ok {
		g.t.Errorf(format, args...)
	}
}

// scenarios cover every kind in the registry (TestScenariosCoverEveryKind).
var scenarios = []scenario{
	{name: "CREATE_CLUSTER", setup: func(*rig) {}, hold: "EnsureControlPlane", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.CreateCluster(ctx, project, zone, &container.Cluster{Name: "c1", NodePools: []*container.NodePool{{Name: "default-pool", InitialNodeCount: 2}}})
		},
		check: func(g *rig) {
			r := g.cluster("c1")
			expect(g, r.Cluster.Status == "RUNNING" && len(r.Nodes["default-pool"]) == 2 && r.Cluster.MasterAuth != nil, "c1: %s, nodes %v", r.Cluster.Status, r.Nodes)
		}},
	{name: "CREATE_CLUSTER, routes-based", setup: func(*rig) {}, hold: "PodCIDR", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.CreateCluster(ctx, project, zone, &container.Cluster{Name: "c1", ClusterIpv4Cidr: "10.96.0.0/14",
				IpAllocationPolicy: &container.IPAllocationPolicy{UseRoutes: true},
				NodePools:          []*container.NodePool{{Name: "default-pool", InitialNodeCount: 2}}})
		},
		check: func(g *rig) { expect(g, g.cluster("c1").routesBased(), "c1 is not routes-based") }},
	{name: "DELETE_CLUSTER", hold: "Destroy", // not cancellable
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.DeleteCluster(ctx, project, zone, "c1")
		},
		check: func(g *rig) {
			_, _, err := g.e.getCluster(context.Background(), project, zone, "c1")
			expect(g, err != nil, "c1 still exists")
		}},
	{name: "CREATE_NODE_POOL", hold: "EnsureNodes", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.CreateNodePool(ctx, project, zone, "c1", &container.NodePool{Name: "extra", InitialNodeCount: 3})
		},
		check: func(g *rig) {
			expect(g, nodesIn(g, "c1", "extra") == 3, "extra has %d nodes", nodesIn(g, "c1", "extra"))
		}},
	{name: "SET_NODE_POOL_SIZE", hold: "EnsureNodes", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.SetNodePoolSize(ctx, project, zone, "c1", "default-pool", 4)
		},
		check: func(g *rig) {
			expect(g, nodesIn(g, "c1", "default-pool") == 4, "%d nodes", nodesIn(g, "c1", "default-pool"))
		}},
	{name: "SET_NODE_POOL_SIZE, shrinking", hold: "RemoveNode", cancellable: true,
		setup: func(g *rig) { g.createCluster("c1", 3, routesBased) },
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.SetNodePoolSize(ctx, project, zone, "c1", "default-pool", 1)
		},
		check: func(g *rig) {
			expect(g, nodesIn(g, "c1", "default-pool") == 1, "%d nodes", nodesIn(g, "c1", "default-pool"))
		}},
	{name: "DELETE_NODE_POOL", hold: "RemoveNode", cancellable: true,
		setup: func(g *rig) {
			g.createCluster("c1", 1, routesBased)
			g.wait(g.e.CreateNodePool(context.Background(), project, zone, "c1", &container.NodePool{Name: "extra", InitialNodeCount: 2}))
		},
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.DeleteNodePool(ctx, project, zone, "c1", "extra")
		},
		check: func(g *rig) { expect(g, g.cluster("c1").pool("extra") == nil, "pool extra is still there") }},
	{name: "UPGRADE_MASTER", hold: "ReplaceHost", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.UpdateCluster(ctx, project, zone, "c1", &container.ClusterUpdate{DesiredMasterVersion: Version})
		},
		check: func(g *rig) {
			expect(g, g.rt.Cluster("c1").Replaced[0] >= 1 && g.cluster("c1").Cluster.Status == "RUNNING", "the replica was not replaced")
		}},
	{name: "UPGRADE_NODES", hold: "RemoveNode", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.UpdateCluster(ctx, project, zone, "c1", &container.ClusterUpdate{DesiredNodeVersion: Version, DesiredNodePoolId: "default-pool"})
		},
		check: func(g *rig) {
			expect(g, nodesIn(g, "c1", "default-pool") == 2, "%d nodes", nodesIn(g, "c1", "default-pool"))
		}},
	{name: "UPDATE_CLUSTER " + actionUpdateAuthorizedNetworks, hold: "EnsureAccess", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.UpdateCluster(ctx, project, zone, "c1", &container.ClusterUpdate{DesiredMasterAuthorizedNetworksConfig: blocks("127.77.0.0/16")})
		},
		check: func(g *rig) {
			expect(g, len(g.rt.Cluster("c1").Allow) == 1, "the endpoints admit %v", g.rt.Cluster("c1").Allow)
		}},
	{name: "UPDATE_CLUSTER " + actionUpdateIntraNodeVisibility, hold: "SetIntraNodeVisibility", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.UpdateCluster(ctx, project, zone, "c1", &container.ClusterUpdate{DesiredIntraNodeVisibilityConfig: &container.IntraNodeVisibilityConfig{Enabled: true}})
		},
		check: func(g *rig) {
			c := g.rt.Cluster("c1")
			expect(g, c.IntraNodeVisibility && c.Replaced[0] >= 1 && g.cluster("c1").Cluster.Status == "RUNNING", "netd %v, replica replaced %d times", c.IntraNodeVisibility, c.Replaced[0])
		}},
	{name: "UPDATE_CLUSTER " + actionUpdateLogging, hold: "LogSources", cancellable: true,
		// A cursor stored first: a cluster never collected has nothing to
		// read when its logging is turned off.
		setup: func(g *rig) { defaultSetup(g); g.e.collectLogs(context.Background()) },
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.UpdateCluster(ctx, project, zone, "c1", &container.ClusterUpdate{DesiredLoggingService: "none"})
		},
		check: func(g *rig) {
			c := g.cluster("c1").Cluster
			expect(g, c.LoggingService == "none" && len(loggingOf(c)) == 0 && c.Status == "RUNNING", "logging %s %v, %s", c.LoggingService, loggingOf(c), c.Status)
		}},
	{name: "UPDATE_CLUSTER " + actionStartIPRotation, hold: "EnsureControlPlane", cancellable: true,
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.StartIPRotation(ctx, project, zone, "c1", false)
		},
		check: func(g *rig) {
			r := g.cluster("c1")
			expect(g, r.IPRotation != nil && g.e.poolOnOldIP(r) == "", "rotation %+v, nodes %v", r.IPRotation, r.Nodes)
		}},
	{name: "UPDATE_CLUSTER " + actionCompleteIPRotation, hold: "EnsureControlPlane", cancellable: true,
		setup: func(g *rig) { defaultSetup(g); startRotation(g, false) },
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.CompleteIPRotation(ctx, project, zone, "c1")
		},
		check: func(g *rig) { expect(g, g.cluster("c1").IPRotation == nil, "the rotation did not complete") }},
	{name: "UPDATE_CLUSTER " + actionStartCredentialRotation, hold: "RotateCA",
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.StartIPRotation(ctx, project, zone, "c1", true)
		},
		check: func(g *rig) {
			r := g.cluster("c1")
			expect(g, r.CARotation != nil && r.CARotation.Phase == cluster.CASignNew && g.rt.Cluster("c1").CAPhase == cluster.CASignNew, "CA rotation %+v", r.CARotation)
		}},
	{name: "UPDATE_CLUSTER " + actionCompleteCredentialRotation, hold: "RotateCA",
		setup: func(g *rig) { defaultSetup(g); startRotation(g, true) },
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.CompleteIPRotation(ctx, project, zone, "c1")
		},
		check: func(g *rig) {
			r := g.cluster("c1")
			expect(g, r.IPRotation == nil && r.CARotation == nil && g.rt.Cluster("c1").CAPhase == cluster.CATrustNew, "rotation %+v %+v", r.IPRotation, r.CARotation)
		}},
	{name: "UPDATE_CLUSTER " + actionRotateClusterCA, hold: "RotateCA",
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.RotateClusterCA(ctx, project, zone, "c1")
		},
		check: func(g *rig) {
			expect(g, g.cluster("c1").CARotation == nil && g.rt.Cluster("c1").CAPhase == cluster.CATrustNew, "the CA rotation did not finish")
		}},
	{name: "SET_LABELS",
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.SetLabels(ctx, project, zone, "c1", map[string]string{"team": "platform"}, "")
		},
		check: func(g *rig) {
			expect(g, g.cluster("c1").Cluster.ResourceLabels["team"] == "platform", "labels %v", g.cluster("c1").Cluster.ResourceLabels)
		}},
	{name: "SET_MAINTENANCE_POLICY",
		start: func(ctx context.Context, e *Engine) (*container.Operation, error) {
			return e.SetMaintenancePolicy(ctx, project, zone, "c1", &container.MaintenancePolicy{Window: &container.MaintenanceWindow{DailyMaintenanceWindow: &container.DailyMaintenanceWindow{StartTime: "03:00"}}})
		},
		check: func(g *rig) { expect(g, g.cluster("c1").Cluster.MaintenancePolicy != nil, "no maintenance policy") }},
}

func routesBased(c *container.Cluster) {
	c.ClusterIpv4Cidr = "10.96.0.0/14"
	c.IpAllocationPolicy = &container.IPAllocationPolicy{UseRoutes: true}
}

// startRotation starts an IP (or credential) rotation on c1 and waits
// until its nodes are recreated.
func startRotation(g *rig, credentials bool) {
	g.wait(g.e.StartIPRotation(context.Background(), project, zone, "c1", credentials))
	g.settle()
}

func (sc scenario) prepare(g *rig) {
	if sc.setup != nil {
		sc.setup(g)
	} else {
		defaultSetup(g)
	}
	g.settle()
}

// TestScenariosCoverEveryKind: every kind of operation has a scenario.
func TestScenariosCoverEveryKind(t *testing.T) {
	covered := map[string]bool{}
	for _, sc := range scenarios {
		covered[sc.name] = true
	}
	for _, k := range (&Engine{}).registry() {
		name := k.Type
		if k.Action != "" {
			name += " " + k.Action
		}
		if !covered[name] {
			t.Errorf("kind %s has no scenario", name)
		}
	}
}

// TestOperationKinds runs every kind of operation to DONE, and, while one
// that blocks its cluster runs: another request on the cluster gets
// CLUSTER_ALREADY_HAS_OPERATION, and a cancel stops it (CANCELLED, the
// cluster free again) or is refused for the kinds that cannot be
// cancelled.
func TestOperationKinds(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			g := newRig(t)
			sc.prepare(g)
			if sc.hold == "" {
				op := g.wait(sc.start(ctx, g.e))
				g.settle()
				sc.check(g)
				g.checkConsistent()
				expect(g, op.Status == "DONE", "born %s", op.Status)
				return
			}
			g.hold(sc.hold)
			op, err := sc.start(ctx, g.e)
			if err != nil {
				t.Fatal(err)
			}
			g.eventually("the operation runs", func() error {
				got, err := g.e.GetOperation(ctx, project, zone, op.Name)
				if err != nil || got.Status != "RUNNING" {
					return fmt.Errorf("%v %v", got, err)
				}
				return nil
			})
			_, err = g.e.SetLabels(ctx, project, zone, "c1", map[string]string{"x": "y"}, "")
			if st := status.From(err); st == nil || st.Code != status.FailedPrecondition || st.Reason == nil || st.Reason.Reason != "CLUSTER_ALREADY_HAS_OPERATION" {
				if sc.name != "CREATE_CLUSTER, routes-based" || st == nil { // c1 exists once create has started
					t.Errorf("another operation during %s: %v", sc.name, err)
				}
			}
			err = g.e.CancelOperation(ctx, project, zone, op.Name)
			if !sc.cancellable {
				if !status.Is(err, status.FailedPrecondition) {
					t.Errorf("cancel of %s: %v, want FAILED_PRECONDITION", sc.name, err)
				}
				g.release()
				g.wait(op, nil)
				g.settle()
				sc.check(g)
				g.checkConsistent()
				return
			}
			if err != nil {
				t.Fatalf("cancel: %v", err)
			}
			// Bounded: a cancel that is not heard fails here, not at the
			// package's timeout.
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			done, err := g.e.WaitOperation(wctx, project, zone, op.Name)
			if err != nil || done.Error == nil || done.Error.Code != int64(status.Cancelled) {
				if err != nil { // where it hangs
					var stacks strings.Builder
					pprof.Lookup("goroutine").WriteTo(&stacks, 2)
					t.Logf("goroutines:\n%s", stacks.String())
				}
				t.Fatalf("cancelled %s ended %+v %v", sc.name, done, err)
			}
			g.release()
			g.settle()
			if sc.name != "CREATE_CLUSTER" && sc.name != "CREATE_CLUSTER, routes-based" {
				if r := g.cluster("c1"); r.Operation != "" {
					t.Errorf("the cluster is still busy with %s", r.Operation)
				}
			}
		})
	}
}

// TestCrashAtEveryWrite stops the engine at every write an operation makes
// (the request's own included), starts a new one on the same store and
// runtime, and checks that the operation completes and that everything is
// consistent: every address and range has exactly one owner, what runs is
// what is recorded.
func TestCrashAtEveryWrite(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			for k := 0; ; k++ {
				crashed := false
				t.Run(fmt.Sprintf("after %d writes", k), func(t *testing.T) {
					g := newRig(t)
					sc.prepare(g)
					g.cs.crashAfter(k)
					op, err := sc.start(ctx, g.e)
					g.eventually("crash or rest", func() error {
						if !g.cs.alive() {
							return nil
						}
						return g.idle()
					})
					if crashed = !g.cs.alive(); !crashed {
						return // the operation made fewer writes: every crash point is covered
					}
					g.restart()
					g.settle()
					if err == nil {
						if done, err := g.e.GetOperation(ctx, project, zone, op.Name); err != nil || done.Status != "DONE" || done.Error != nil {
							t.Fatalf("after the crash: %+v %v", done, err)
						}
						sc.check(g)
					}
					g.checkConsistent()
				})
				if !crashed || t.Failed() {
					return
				}
			}
		})
	}
}

// TestOperationsWaitForTheirClusterToResume: an operation asked for while a
// starting engine brings its cluster back up runs once that is done. The
// resume works from the record it read, so it would start again a node the
// operation had removed meanwhile (CI: TestCrashAtEveryWrite, a node
// recreation started by the new engine's rotation follower).
func TestOperationsWaitForTheirClusterToResume(t *testing.T) {
	ctx := context.Background()
	g := newRig(t)
	g.createCluster("c1", 2)
	g.stop()
	var resuming atomic.Bool
	var early atomic.Int32
	g.rt.Hook = func(ctx context.Context, call string, s cluster.Spec) error {
		if call == "RemoveNode" && resuming.Load() {
			early.Add(1)
		}
		return g.hook(ctx, call, s)
	}
	resuming.Store(true)
	g.hold("EnsureControlPlane") // the resume's first call
	g.start()
	op, err := g.e.SetNodePoolSize(ctx, project, zone, "c1", "default-pool", 1)
	if err != nil {
		t.Fatal(err)
	}
	g.eventually("the operation runs", func() error {
		got, err := g.e.GetOperation(ctx, project, zone, op.Name)
		if err != nil || got.Status != "RUNNING" {
			return fmt.Errorf("%v %v", got, err)
		}
		return nil
	})
	// Room for an operation that does not wait to remove its node: it
	// does so within microseconds of running.
	time.Sleep(200 * time.Millisecond)
	resuming.Store(false)
	g.release()
	g.wait(op, nil)
	g.settle()
	if n := early.Load(); n > 0 {
		t.Errorf("the operation removed %d node(s) while the engine resumed the cluster", n)
	}
	g.checkConsistent()
}
