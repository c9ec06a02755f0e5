// Package cluster runs one Kubernetes cluster on this machine: its control
// plane (processes under the supervisor, PKI and kubeconfigs in the kubeadm
// layout, a load balancer frontend on its endpoint), the objects `kubeadm
// init` creates (bootstrap token, cluster-info, RBAC for joining nodes), and
// its node agents. Every method is idempotent, so an operation interrupted
// by a crash simply runs again.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/loadbalancer"
	"github.com/kubeyard/kubeyard/internal/node"
	"github.com/kubeyard/kubeyard/internal/pki"
	"github.com/kubeyard/kubeyard/internal/poll"
	"github.com/kubeyard/kubeyard/internal/sharedetcd"
	"github.com/kubeyard/kubeyard/internal/supervisor"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// Spec is everything needed to run one cluster.
type Spec struct {
	controlplane.Cluster
	// ID names the cluster's processes and folder uniquely on this machine.
	ID    string
	Hosts []controlplane.Host
	// EtcdHosts are the external etcd members' machines (kubeadm's external
	// etcd topology); none means stacked etcd, a member beside each
	// kube-apiserver.
	EtcdHosts []controlplane.Host
	// SharedEtcdIP, when set, is the address of the engine's shared etcd,
	// where the cluster keeps its state under a prefix of its own (the
	// shared topology, zonal clusters only); Cluster.EtcdPrefix says where.
	SharedEtcdIP net.IP
	// EndpointPort is the load balancer port (443 unless it could not be bound).
	EndpointPort int
	// OldEndpointIP is, during an IP rotation, the endpoint the cluster had
	// before: it is served (and its certificates cover it) until completion.
	OldEndpointIP net.IP
	// PrivateEndpointIP is the private endpoint of a private cluster that
	// has a public endpoint too: a frontend of its own, the one its nodes
	// use. (A cluster with only a private endpoint has it as EndpointIP.)
	PrivateEndpointIP net.IP
	// AuthorizedNetworks, when not nil, are the only client sources the
	// endpoints admit besides the cluster's own machines: its replicas
	// (Hosts) and its nodes (NodeSources).
	AuthorizedNetworks []netip.Prefix
	// NodeSources are the addresses the nodes' connections come from.
	NodeSources []net.IP
	// Network is the cluster's VPC network ("P/N"), where its internal
	// endpoint (InternalEndpointIP) is served; NodeRange is its nodes'
	// subnetwork's primary range.
	Network   string
	NodeRange netip.Prefix
	// Creator gets cluster-admin.
	Creator string
}

// ExternalEtcd says whether etcd runs on machines of its own.
func (s Spec) ExternalEtcd() bool { return len(s.EtcdHosts) > 0 }

// SharedEtcd says whether the cluster keeps its state in the shared etcd.
func (s Spec) SharedEtcd() bool { return s.SharedEtcdIP != nil }

// Endpoint is the cluster's address as clients use it: "IP", or "IP:PORT"
// when the port is not 443.
func (s Spec) Endpoint() string { return s.endpointAt(s.EndpointIP) }

// NodeEndpoint is the address nodes join and talk to: the private
// endpoint when the cluster has one.
func (s Spec) NodeEndpoint() string {
	if s.PrivateEndpointIP != nil {
		return s.endpointAt(s.PrivateEndpointIP)
	}
	return s.Endpoint()
}

func (s Spec) endpointAt(ip net.IP) string {
	if s.EndpointPort == 0 || s.EndpointPort == 443 {
		return ip.String()
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(s.EndpointPort))
}

func (s Spec) frontendAddr(ip net.IP) string {
	port := s.EndpointPort
	if port == 0 {
		port = 443
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(port))
}

// endpointIPs are the addresses clients may use (and the serving
// certificates cover): the endpoint, the old one during an IP rotation,
// and the private one.
func (s Spec) endpointIPs() []net.IP {
	var out []net.IP
	for _, f := range s.frontends() {
		out = append(out, f.ip)
	}
	return out
}

// lbFrontend is one load balancer frontend of the cluster: its config
// file's name and its address.
type lbFrontend struct {
	name string
	ip   net.IP
}

// frontends are the cluster's load balancer frontends.
func (s Spec) frontends() []lbFrontend {
	out := []lbFrontend{{s.ID, s.EndpointIP}}
	if s.OldEndpointIP != nil {
		out = append(out, lbFrontend{s.oldFrontend(), s.OldEndpointIP})
	}
	if s.PrivateEndpointIP != nil {
		out = append(out, lbFrontend{s.ID + "-private-endpoint", s.PrivateEndpointIP})
	}
	return out
}

// allow is the sources every frontend admits: nil (all) without
// authorized networks; else those networks and the cluster's machines.
func (s Spec) allow() []string {
	if s.AuthorizedNetworks == nil {
		return nil
	}
	out := []string{}
	for _, p := range s.AuthorizedNetworks {
		out = append(out, p.String())
	}
	for _, h := range s.Hosts {
		out = append(out, h.IP.String()+"/32")
	}
	for _, ip := range s.NodeSources {
		out = append(out, ip.String()+"/32")
	}
	return out
}

func frontendNames(fs []lbFrontend) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.name)
	}
	return out
}

// oldFrontend names the frontend file of the old endpoint.
func (s Spec) oldFrontend() string { return s.ID + "-old-endpoint" }

// Config configures a Runtime.
type Config struct {
	Supervisor *supervisor.Supervisor
	// LoadBalancerDir is the config folder of the load balancer process
	// that serves cluster endpoints: one frontend file per cluster.
	LoadBalancerDir string
	// RunDir and LogDir hold the load balancer process's pidfile and log;
	// without them the runtime starts no load balancer (a machine joined
	// from outside the engine).
	RunDir, LogDir string
	// Clock is the machines' clock (default: the real one): certificates
	// are issued, and nodes report, in the time the kube components read.
	Clock  clock.Clock
	Logger *slog.Logger
	// Version is the Kubernetes version the nodes report.
	Version string
	// ReadyTimeout bounds how long a component may take to become healthy.
	ReadyTimeout time.Duration
	// Pods makes nodes real: their pods run as containers. Without it
	// every node is simulated.
	Pods *Pods
	// SharedEtcd runs the shared etcd of clusters with the shared
	// topology (none: such clusters cannot run).
	SharedEtcd *sharedetcd.Server
}

// Runtime runs clusters.
type Runtime struct {
	cfg       Config
	mu        sync.Mutex
	agents    map[string]*node.Agent            // by cluster ID + "/" + node name
	joined    map[string][]loadbalancer.Backend // by cluster ID: replicas joined from outside
	followers map[string]context.CancelFunc     // by cluster ID: registry followers
	// dataplanes are the real nodes' parts of the machine, by the agents'
	// key.
	dataplanes map[string]*dataplane
	// firewalls are the rules of each VPC network (by Node.Network);
	// applied what was last applied in each network's namespace.
	firewalls  map[string][]firewall.Rule
	firewallMu sync.Mutex
	applied    map[string]string
	// routes are each VPC network's routes (its Compute routes).
	routes map[string][]vpcnet.Route
	// services are the clusters' Service caches (FollowServices), by ID.
	services map[string]*serviceWatch
	// fleets are the clusters' simulated nodes' shared clients, by ID.
	fleets map[string]*node.Fleet
}

// New returns a Runtime with defaults filled in.
func New(cfg Config) (*Runtime, error) {
	if cfg.Supervisor == nil || cfg.LoadBalancerDir == "" {
		return nil, errors.New("cluster: a supervisor and a load balancer folder are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = &clock.Offset{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	return &Runtime{cfg: cfg, agents: map[string]*node.Agent{}, joined: map[string][]loadbalancer.Backend{}, followers: map[string]context.CancelFunc{}, dataplanes: map[string]*dataplane{}, services: map[string]*serviceWatch{}, fleets: map[string]*node.Fleet{}}, nil
}

// loadBalancerProcess is the supervisor's name for the process that serves
// every cluster endpoint. It outlives the engine like the control planes
// do, so endpoints keep serving while the engine restarts.
const loadBalancerProcess = "loadbalancer"

// Start brings up what every cluster's endpoints need: the load balancer
// process (adopted if it runs already).
func (r *Runtime) Start(ctx context.Context) error {
	if r.cfg.RunDir == "" {
		return nil
	}
	err := r.cfg.Supervisor.Ensure(loadBalancerProcess, supervisor.Process{
		Args:    []string{"loadbalancer", "--config-dir", r.cfg.LoadBalancerDir},
		PIDFile: filepath.Join(r.cfg.RunDir, "loadbalancer.pid"),
		LogFile: filepath.Join(r.cfg.LogDir, "loadbalancer.log"),
	})
	if err != nil {
		return fmt.Errorf("cluster: load balancer: %w", err)
	}
	return nil
}

// InUse reports whether something on this machine serves addr:port: an
// address in use is not handed out, so that two engines on one machine
// with the same ranges do not clash.
func (r *Runtime) InUse(addr netip.Addr, port int) bool {
	conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// EnsureControlPlane brings the cluster's control plane up the kubeadm way:
// the first host is initialised (kubeadm init: PKI, etcd, kube-apiserver,
// the cluster's bootstrap objects); every other host joins it (kubeadm join
// --control-plane: token discovery with CA pinning, the shared certificates
// from the kubeadm-certs Secret, its own leaf certificates, a new stacked
// etcd member); then the controller-managers and schedulers start. In the
// external etcd topology the etcd members start first, together, on
// machines of their own, and every kube-apiserver talks to all of them.
//
// Once the cluster exists, any host that holds its PKI leads, and a host
// that lost its folder (a replaced machine) joins again: the cluster is
// never initialised twice.
func (r *Runtime) EnsureControlPlane(ctx context.Context, s Spec) error {
	return r.ensureControlPlane(ctx, s, &joiner{r: r, s: s})
}

// ensureControlPlane is EnsureControlPlane with a joiner that may hold a
// join token prepared already.
func (r *Runtime) ensureControlPlane(ctx context.Context, s Spec, j *joiner) error {
	now := r.cfg.Clock.Now()
	first, initialised := s.pkiHost()
	if s.SharedEtcd() {
		// Before the cluster's own CAs: the tenant's etcd CA is the shared
		// etcd's, of which the cluster holds the certificate only.
		if err := r.ensureTenant(ctx, s, first, now); err != nil {
			return err
		}
	}
	if !initialised {
		if err := pki.EnsureShared(s.PKIDir(first), s.Name, now); err != nil {
			return fmt.Errorf("cluster %s: PKI: %w", s.Name, err)
		}
	}
	if err := r.ensureHostFiles(s, first, now); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	// etcd and kube-apiserver start together: the apiserver retries etcd
	// until it answers, which saves the time etcd takes to elect itself.
	var initial []controlplane.Component
	switch {
	case s.SharedEtcd():
		initial = []controlplane.Component{controlplane.APIServer(s.Cluster, first, etcdServers(s, first))}
	case s.ExternalEtcd():
		members, err := r.externalEtcd(s, now)
		if err != nil {
			return err
		}
		initial = append(members, controlplane.APIServer(s.Cluster, first, etcdServers(s, first)))
	default:
		etcd, err := stackedMember(s, first)
		if err != nil {
			return err
		}
		initial = []controlplane.Component{etcd, controlplane.APIServer(s.Cluster, first, etcdServers(s, first))}
	}
	if err := r.run(ctx, s, initial...); err != nil {
		return err
	}
	if err := r.ensureFrontend(ctx, s); err != nil {
		return err
	}
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	// A control plane that just became ready can still refuse a write for
	// a moment (post-start hooks, caches); retry until the deadline.
	bootCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := poll.Until(bootCtx, func(ctx context.Context) error {
		if err := bootstrapObjects(ctx, client, s); err != nil {
			return err
		}
		if err := ensureDNS(ctx, client, s); err != nil {
			return err
		}
		return ensureRegistry(ctx, client, s)
	}); err != nil {
		return fmt.Errorf("cluster %s: bootstrap objects: %w", s.Name, err)
	}
	r.follow(s)
	// The first host is complete before anyone joins: its
	// controller-manager runs the bootstrap signer that discovery needs.
	if err := r.run(ctx, s, controlplane.ControllerManager(s.Cluster, first), controlplane.Scheduler(s.Cluster, first)); err != nil {
		return err
	}
	var rest []controlplane.Component
	j.client = client
	for _, h := range s.Hosts {
		if h.Index == first.Index {
			continue
		}
		if err := j.ensure(ctx, h); err != nil {
			return err
		}
		rest = append(rest, controlplane.ControllerManager(s.Cluster, h), controlplane.Scheduler(s.Cluster, h))
	}
	return r.run(ctx, s, rest...)
}

// pkiHost returns the first host that holds the cluster's shared PKI, and
// whether there is one; without one the cluster is new and host 0 is
// initialised.
func (s Spec) pkiHost() (controlplane.Host, bool) {
	for _, h := range s.Hosts {
		if pki.Exists(s.PKIDir(h), "ca") {
			return h, true
		}
	}
	return s.Hosts[0], false
}

// externalEtcd prepares the external etcd members' machines (a copy of the
// etcd CA, their own server and peer certificates, as kubeadm's external
// etcd setup does) and returns their members, which start together as one
// new cluster.
func (r *Runtime) externalEtcd(s Spec, now time.Time) ([]controlplane.Component, error) {
	var members []string
	for _, h := range s.EtcdHosts {
		members = append(members, controlplane.EtcdMember(s.Cluster, h))
	}
	var comps []controlplane.Component
	for _, h := range s.EtcdHosts {
		if err := pki.CopyCA(s.SharedPKIDir(), s.PKIDir(h), "etcd/ca"); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", s.Name, err)
		}
		if err := pki.EnsureLeaves(s.PKIDir(h), pki.Host{Name: s.HostName(h), IP: h.IP, Role: pki.EtcdOnly}, now); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", s.Name, err)
		}
		comps = append(comps, controlplane.Etcd(s.Cluster, h, members, "new"))
	}
	return comps, nil
}

// ensureTenant brings the shared etcd up (or adopts it) and makes the
// cluster a tenant of it, with the etcd certificates of host h.
func (r *Runtime) ensureTenant(ctx context.Context, s Spec, h controlplane.Host, now time.Time) error {
	if r.cfg.SharedEtcd == nil {
		return fmt.Errorf("cluster %s: this engine runs no shared etcd", s.Name)
	}
	if err := r.cfg.SharedEtcd.Ensure(ctx, s.SharedEtcdIP, now); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	if err := r.cfg.SharedEtcd.AddTenant(ctx, s.SharedEtcdIP, s.ID, s.PKIDir(h), now); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	return nil
}

// removeTenant deletes the keys and the etcd user of a cluster on the
// shared etcd, which it starts if it must (a cluster deleted before the
// engine resumed any other).
func (r *Runtime) removeTenant(ctx context.Context, s Spec) error {
	if !s.SharedEtcd() {
		return nil
	}
	err := r.cfg.SharedEtcd.Ensure(ctx, s.SharedEtcdIP, r.cfg.Clock.Now())
	if err == nil {
		err = r.cfg.SharedEtcd.RemoveTenant(ctx, s.SharedEtcdIP, s.ID)
	}
	if err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	return nil
}

// etcdServers are the etcd members kube-apiserver h talks to: its local
// member when stacked, every member when external, the shared one when
// shared.
func etcdServers(s Spec, h controlplane.Host) []string {
	if s.SharedEtcd() {
		return []string{sharedetcd.ClientURL(s.SharedEtcdIP)}
	}
	if !s.ExternalEtcd() {
		return []string{controlplane.EtcdClientURL(h)}
	}
	var urls []string
	for _, m := range s.EtcdHosts {
		urls = append(urls, controlplane.EtcdClientURL(m))
	}
	return urls
}

// JoinControlPlaneHost is the certificate part of `kubeadm join
// --control-plane` for host h: discovery pins the cluster CA, then the
// shared certificates come from the kubeadm-certs Secret, decrypted with the
// certificate key. A wrong pin or key fails and writes nothing.
func JoinControlPlaneHost(ctx context.Context, s Spec, h controlplane.Host, cfg join.Config, certKey string) error {
	_, client, err := join.Discover(ctx, cfg)
	if err != nil {
		return err
	}
	return join.DownloadCerts(ctx, client, certKey, s.PKIDir(h))
}

// ensureFrontend configures the cluster's endpoints on the load balancer
// (during an IP rotation, the old one too; after it, the old one is gone)
// and waits until that is so.
func (r *Runtime) ensureFrontend(ctx context.Context, s Spec) error {
	if err := r.writeFrontend(s); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	for _, ip := range s.endpointIPs() {
		if err := loadbalancer.WaitListening(ctx, s.frontendAddr(ip), true); err != nil {
			return fmt.Errorf("cluster %s: endpoint: %w", s.Name, err)
		}
	}
	for _, name := range r.internalFrontends(s) {
		if err := loadbalancer.WaitApplied(ctx, r.cfg.LoadBalancerDir, name); err != nil {
			return fmt.Errorf("cluster %s: internal endpoint: %w", s.Name, err)
		}
	}
	if s.OldEndpointIP == nil && r.oldAddr(s) != "" {
		old := r.oldAddr(s)
		if err := loadbalancer.RemoveFrontend(r.cfg.LoadBalancerDir, s.oldFrontend()); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
		if err := loadbalancer.WaitListening(ctx, old, false); err != nil {
			return fmt.Errorf("cluster %s: old endpoint: %w", s.Name, err)
		}
	}
	return nil
}

// oldAddr is the address of the old endpoint's frontend, if it is configured.
func (r *Runtime) oldAddr(s Spec) string {
	f, err := loadbalancer.ReadFrontend(r.cfg.LoadBalancerDir, s.oldFrontend())
	if err != nil {
		return ""
	}
	return f.Addr
}

// writeFrontend points the cluster's endpoints at every replica (the
// engine's and the machines that joined), admitting the sources s allows.
func (r *Runtime) writeFrontend(s Spec) error {
	var backends []loadbalancer.Backend
	for _, h := range s.Hosts {
		backends = append(backends, backend(h))
	}
	r.mu.Lock()
	backends = append(backends, r.joined[s.ID]...)
	r.mu.Unlock()
	// The cluster's own file last: as a rotation starts, the old address
	// moves from it to the old endpoint's file, and the load balancer,
	// reading the folder between the two writes, would find the old
	// address in neither and close the connections of every client on it
	// (CI: TestCredentialRotation, a request cut as the rotation started).
	// Found in both for a moment, it stays as it is.
	fs := s.frontends()
	for i := len(fs) - 1; i >= 0; i-- {
		fe := loadbalancer.Frontend{Addr: s.frontendAddr(fs[i].ip), Backends: backends, Allow: s.allow()}
		if err := writeFrontendFile(r.cfg.LoadBalancerDir, fs[i].name, fe); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	return r.writeInternalFrontends(s, backends)
}

// writeFrontendFile writes a frontend's file (replaced in tests, to see
// the folder after each write).
var writeFrontendFile = loadbalancer.WriteFrontend

// EnsureAccess applies the sources s admits to the cluster's endpoints
// (authorized networks, the nodes) and waits until the load balancer has
// applied them.
func (r *Runtime) EnsureAccess(ctx context.Context, s Spec) error {
	if err := r.writeFrontend(s); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	for _, name := range append(frontendNames(s.frontends()), r.internalFrontends(s)...) {
		if err := loadbalancer.WaitApplied(ctx, r.cfg.LoadBalancerDir, name); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	return nil
}

func (r *Runtime) ensureHostFiles(s Spec, h controlplane.Host, now time.Time) error {
	pkiDir := s.PKIDir(h)
	ips := s.endpointIPs()
	if s.InternalEndpointIP != nil {
		ips = append(ips, s.InternalEndpointIP)
	}
	host := pki.Host{Name: s.HostName(h), IP: h.IP, EndpointIPs: ips, ServiceIP: firstIP(s.ServiceCIDR)}
	switch {
	case s.SharedEtcd():
		host.Role = pki.EtcdTenant
	case s.ExternalEtcd():
		host.Role = pki.ControlPlaneOnly
	}
	if err := pki.EnsureLeaves(pkiDir, host, now); err != nil {
		return err
	}
	if err := pki.EnsureKubeconfigs(s.HostDir(h), pkiDir, s.Name, "https://"+s.Endpoint(), h.APIServerURL(), now); err != nil {
		return err
	}
	return writeWebhookConfig(s.WebhookConfigFile(h), s.AuthnWebhookURL)
}

// writeWebhookConfig writes the kubeconfig kube-apiserver uses to reach the
// engine's TokenReview endpoint.
func writeWebhookConfig(path, url string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubeyard"] = &clientcmdapi.Cluster{Server: url}
	cfg.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["webhook"] = &clientcmdapi.Context{Cluster: "kubeyard", AuthInfo: "kube-apiserver"}
	cfg.CurrentContext = "webhook"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return pki.WriteFile(path, data)
}

func firstIP(cidr string) net.IP {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil
	}
	ip := n.IP.To4()
	out := make(net.IP, len(ip))
	copy(out, ip)
	out[len(out)-1]++
	return out
}

// processName is the supervisor's name for a component of cluster s.
func processName(s Spec, c controlplane.Component) string { return s.ID + "/" + c.Name }

// run starts the components and waits until every one is healthy.
func (r *Runtime) run(ctx context.Context, s Spec, comps ...controlplane.Component) error {
	if err := r.start(s, comps...); err != nil {
		return err
	}
	return r.waitHealthy(ctx, s, comps...)
}

// start has the supervisor run the components (or adopt them).
func (r *Runtime) start(s Spec, comps ...controlplane.Component) error {
	for _, c := range comps {
		err := r.cfg.Supervisor.Ensure(processName(s, c), supervisor.Process{
			Args:    append([]string{"component", c.Program}, c.Args...),
			Env:     c.Env,
			PIDFile: filepath.Join(s.Dir, "run", c.Name+".pid"),
			LogFile: filepath.Join(s.Dir, "logs", c.Name+".log"),
		})
		if err != nil {
			return fmt.Errorf("cluster %s: %s: %w", s.Name, c.Name, err)
		}
	}
	return nil
}

// waitHealthy waits until every component answers its health check.
func (r *Runtime) waitHealthy(ctx context.Context, s Spec, comps ...controlplane.Component) error {
	if len(comps) == 0 {
		return nil // a zonal cluster has no further replicas
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	begin := time.Now()
	defer func() {
		r.cfg.Logger.Info("components healthy", "cluster", s.Name, "first", comps[0].Name, "count", len(comps), "took", time.Since(begin).Round(time.Millisecond))
	}()
	var wg sync.WaitGroup
	errs := make([]error, len(comps))
	for i, c := range comps {
		wg.Go(func() {
			if err := poll.Until(ctx, func(ctx context.Context) error { return healthy(ctx, c.HealthURL) }); err != nil {
				errs[i] = fmt.Errorf("cluster %s: %s did not become healthy (log: %s): %w", s.Name, c.Name, filepath.Join(s.Dir, "logs", c.Name+".log"), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

var healthClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
}

func healthy(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// sourceIP is the address the engine's own connections to the endpoint
// come from: a control-plane replica's, which the endpoint always admits.
func (s Spec) sourceIP() net.IP {
	h, _ := s.pkiHost()
	return h.IP
}

// AdminClient is a client with the super-admin credentials of a host that
// holds the cluster's PKI, through the cluster endpoint.
func (r *Runtime) AdminClient(s Spec) (kubernetes.Interface, error) {
	return r.adminClient(s, 100, 200)
}

// adminClient is a cluster-admin client with the rate limits given (a
// negative qps: none).
func (r *Runtime) adminClient(s Spec, qps float32, burst int) (kubernetes.Interface, error) {
	cfg, err := adminConfig(s)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = qps, burst
	return kubernetes.NewForConfig(cfg)
}

// adminConfig is the super-admin's client configuration, through the
// cluster endpoint from a control-plane replica's address.
func adminConfig(s Spec) (*rest.Config, error) {
	h, _ := s.pkiHost()
	cfg, err := clientcmd.BuildConfigFromFlags("https://"+s.Endpoint(), filepath.Join(s.HostDir(h), "super-admin.conf"))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: admin kubeconfig: %w", s.Name, err)
	}
	cfg.Dial = join.DialFrom(s.sourceIP())
	return cfg, nil
}

// CAPin is the cluster CA's discovery-token-ca-cert-hash.
func (r *Runtime) CAPin(s Spec) (string, error) { return caPin(s) }

func caPin(s Spec) (string, error) {
	caPEM, err := caCertPEM(s)
	if err != nil {
		return "", err
	}
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		return "", err
	}
	return pki.SPKIHash(ca), nil
}

// CACertificate returns the cluster CA certificate (PEM): the one that
// signs, which masterAuth reports.
func (r *Runtime) CACertificate(s Spec) ([]byte, error) { return caCertPEM(s) }

func caCertPEM(s Spec) ([]byte, error) {
	h, _ := s.pkiHost()
	return os.ReadFile(filepath.Join(s.PKIDir(h), "ca.crt"))
}

// follow starts the cluster's registry follower, unless it runs.
func (r *Runtime) follow(s Spec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.followers[s.ID]; ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.followers[s.ID] = cancel
	go r.followRegistry(ctx, s)
}

// unfollow stops the registry followers of clusters whose ID has the prefix.
func (r *Runtime) unfollow(prefix string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, cancel := range r.followers {
		if strings.HasPrefix(id, prefix) {
			cancel()
			delete(r.followers, id)
			delete(r.joined, id)
		}
	}
}

// Destroy stops everything of the cluster and removes its files.
func (r *Runtime) Destroy(s Spec) error {
	r.unfollow(s.ID)
	r.stopServices(s.ID)
	if err := r.removeServiceFrontends(s); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	r.stopAgents(s.ID + "/")
	// The endpoint addresses go back to the pool: they must be free first.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.removeDataplanes(ctx, s.ID+"/", s); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	for _, f := range s.frontends() {
		if err := loadbalancer.RemoveFrontend(r.cfg.LoadBalancerDir, f.name); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
		if err := loadbalancer.WaitListening(ctx, s.frontendAddr(f.ip), false); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	if err := r.removeInternalEndpoint(ctx, s); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	r.StopProcesses(s.ID + "/")
	if err := r.removeTenant(ctx, s); err != nil {
		return err
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("cluster %s: remove files: %w", s.Name, err)
	}
	return nil
}

// stopOrder is the order in which a cluster's processes stop: clients of
// the apiserver first (the nodes' kube-proxies among them), then the apiserver (which drains), then etcd last.
var stopOrder = []string{"kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"}

// StopProcesses stops the control-plane processes whose supervisor name has
// the prefix ("" for every cluster), in stopOrder.
func (r *Runtime) StopProcesses(prefix string) {
	for _, program := range stopOrder {
		r.cfg.Supervisor.StopMatching(func(name string) bool {
			_, component, _ := strings.Cut(name, "/")
			return strings.HasPrefix(name, prefix) && strings.HasPrefix(component, program+"-")
		})
	}
}

// Close stops every node agent; with stopProcesses, every control plane
// and the load balancer too. Whatever is left runs on, for the next engine
// to adopt.
func (r *Runtime) Close(stopProcesses bool) {
	r.unfollow("")
	r.stopServices("")
	r.stopAgents("")
	if stopProcesses {
		// The machines are switched off: their containers stop.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := errors.Join(r.removeDataplanes(ctx, "", Spec{}), r.sweep()); err != nil {
			r.cfg.Logger.Warn("stop pods", "err", err)
		}
		cancel()
		r.StopProcesses("")
		if r.cfg.RunDir != "" {
			_ = r.cfg.Supervisor.Stop(loadBalancerProcess)
		}
	}
	r.cfg.Supervisor.Detach()
}
