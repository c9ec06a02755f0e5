package engine

import (
	"context"
	"net/netip"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/flows"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/logcollect"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// Runtime is everything the engine asks of the machines its clusters run
// on: control planes, nodes, bootstrap tokens, pod ranges, the cluster CA,
// health, access to the endpoints, and destruction. Every call is
// idempotent, so an operation cut off by a crash just runs again.
// *cluster.Runtime runs them for real on this machine; the engine's unit
// tests use a fake (internal/engine/fakeruntime).
type Runtime interface {
	// Start brings up what serves every cluster (the endpoints' load
	// balancer); Close stops the node agents and, with stopClusters,
	// every cluster's processes too (otherwise they run on, for the next
	// engine to adopt).
	Start(ctx context.Context) error
	Close(stopClusters bool)
	// InUse says whether something on the machine serves addr:port, so
	// that the address is not handed out.
	InUse(addr netip.Addr, port int) bool

	EnsureControlPlane(ctx context.Context, s cluster.Spec) error
	// CheckHealthy fails with cluster.ErrWouldLoseQuorum when a replica is
	// unhealthy.
	CheckHealthy(ctx context.Context, s cluster.Spec) error
	ReplaceHost(ctx context.Context, s cluster.Spec, h controlplane.Host) error
	// EnsureAccess applies who may reach the endpoints and waits until
	// every endpoint enforces it.
	EnsureAccess(ctx context.Context, s cluster.Spec) error
	// JoinedReplicas names the control-plane replicas that joined from
	// other machines.
	JoinedReplicas(s cluster.Spec) []string
	Destroy(s cluster.Spec) error

	// EnsureNodes starts the nodes that do not run (joining with token)
	// and waits until every one is Ready; RemoveNode drains one and
	// removes it.
	EnsureNodes(ctx context.Context, s cluster.Spec, nodes []cluster.Node, token string) error
	RemoveNode(ctx context.Context, s cluster.Spec, name string) error
	// ScaleDNS sets the cluster DNS's replicas for its nodes, as GKE's
	// kube-dns autoscaler does (EnsureNodes does it too).
	ScaleDNS(ctx context.Context, s cluster.Spec) error
	// PodCIDR waits until the node has its pod range and returns it.
	PodCIDR(ctx context.Context, s cluster.Spec, node string) (string, error)
	// SetFirewall enforces a VPC network's firewall rules ("P/N") on its
	// nodes and pods.
	SetFirewall(network string, rules []firewall.Rule) error
	// SetIntraNodeVisibility runs netd on every node of the cluster (on)
	// or none, and waits until each node routes as it says.
	SetIntraNodeVisibility(ctx context.Context, s cluster.Spec, on bool) error
	// SetRoutes gives a VPC network ("P/N") its routes to instances.
	SetRoutes(network string, routes []vpcnet.Route) error
	// FirewallHits are the connections the network's logging firewall
	// rules decided lately (firewall.LoggedFor).
	FirewallHits(network string) ([]firewall.Hit, error)
	// PodAddresses names the cluster's pods by address (host-network pods
	// left out: theirs is their node's).
	PodAddresses(ctx context.Context, s cluster.Spec) (map[netip.Addr]cluster.PodName, error)
	// ReadKubernetes reads a path of the cluster's own API (GET, as its
	// admin): what the console shows of its workloads.
	ReadKubernetes(ctx context.Context, s cluster.Spec, path string, query url.Values) ([]byte, error)
	// FollowServices watches the cluster's Services and their endpoints,
	// calling changed after each change; LoadBalancerServices lists those
	// that have or must have a load balancer (ok: the watch has listed
	// them); ServeLoadBalancer serves one at ip, and ReleaseLoadBalancer
	// stops serving it and lets the Service go; LoadBalancerFailed tells
	// the Service's users why it has none.
	FollowServices(s cluster.Spec, changed func()) error
	LoadBalancerServices(s cluster.Spec) (lbs []cluster.ServiceLB, ok bool)
	ServeLoadBalancer(ctx context.Context, s cluster.Spec, lb cluster.ServiceLB, ip netip.Addr) error
	ReleaseLoadBalancer(ctx context.Context, s cluster.Spec, namespace, name, uid string, ip netip.Addr, internal bool) error
	LoadBalancerFailed(ctx context.Context, s cluster.Spec, lb cluster.ServiceLB, message string) error
	// LogSources are the cluster's log files: its containers' and its
	// control-plane components'.
	LogSources(ctx context.Context, s cluster.Spec) ([]logcollect.Source, error)
	// Events are the cluster's Kubernetes events changed after
	// resourceVersion after, oldest first, at most limit, and the latest
	// resourceVersion of all.
	Events(ctx context.Context, s cluster.Spec, after uint64, limit int) ([]corev1.Event, uint64, error)
	// Connections are the connections crossing a VPC network now, and
	// its real nodes (address and pod range).
	Connections(network string) ([]flows.Flow, []firewall.Instance, error)

	CreateToken(ctx context.Context, s cluster.Spec, t join.Token) (join.BootstrapToken, error)
	UploadCerts(ctx context.Context, s cluster.Spec, key string) error
	CACertificate(s cluster.Spec) ([]byte, error)
	CAPin(s cluster.Spec) (string, error)
	AdminKubeconfig(s cluster.Spec) ([]byte, error)

	// NewCARotation makes the new CA (and keys) of a CA rotation;
	// WriteCAPhase writes a phase's files whole (first thing on resume);
	// RotateCA applies a phase, reporting progress through say.
	NewCARotation(s cluster.Spec, serviceAccountKeys bool, now time.Time) (*cluster.CARotation, error)
	WriteCAPhase(s cluster.Spec, rot *cluster.CARotation) error
	RotateCA(ctx context.Context, s cluster.Spec, rot *cluster.CARotation, say func(string)) error
}

var _ Runtime = (*cluster.Runtime)(nil)
