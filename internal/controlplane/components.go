// Package controlplane describes a cluster's control plane as data: pure
// functions turn a cluster's configuration into the processes (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) with the flags
// kubeadm gives them, and into the files they need (PKI, kubeconfigs). The
// supervisor runs what these functions return; a golden test pins them.
package controlplane

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/kubeyard/kubeyard/internal/pace"
)

// Ports are the standard control-plane ports. Every replica has a loopback
// address of its own, so the standard ports never clash between replicas or
// clusters.
const (
	APIServerPort         = 6443
	EtcdClientPort        = 2379
	EtcdPeerPort          = 2380
	ControllerManagerPort = 10257
	SchedulerPort         = 10259
)

// Cluster is what the control plane of one cluster is built from.
type Cluster struct {
	Name       string // the GKE cluster name
	Dir        string // the cluster's folder under the data dir
	EndpointIP net.IP // the load balancer address clients use
	// InternalEndpointIP is the cluster's endpoint inside its VPC network,
	// where its nodes and pods reach the API: the "kubernetes" Service's
	// endpoint (none: a cluster without one keeps that Service empty).
	InternalEndpointIP net.IP
	// ServiceCIDR and PodCIDR are the cluster's service and pod ranges;
	// NodeMaskSize is the size of the pod range each node gets.
	ServiceCIDR  string
	PodCIDR      string
	NodeMaskSize int
	// AuthnWebhookURL is the engine's TokenReview endpoint, which maps the
	// engine's access token to a Kubernetes user.
	AuthnWebhookURL string
	// LoneEtcd says the cluster's etcd is a single member (a zonal
	// control plane): it has no follower to keep, and its leader beats
	// every 200 ms rather than every 100 ms (its ticks were half of an
	// idle member's CPU at 100 ms; 500 ms cut that in half again but made
	// its first election, at start, take up to 5 s). The election timeout
	// stays etcd's 1 s, so a machine joined later keeps etcd's defaults.
	LoneEtcd bool
	// EtcdPrefix is where kube-apiserver keeps the cluster's objects in an
	// etcd it shares with other clusters (see SharedEtcd); empty: its own
	// etcd, under upstream's /registry.
	EtcdPrefix string
}

// Host is one machine of a cluster's control plane: a control-plane replica
// (kube-apiserver, controller-manager, scheduler, and in the stacked
// topology an etcd member), or in the external topology an etcd member's
// machine of its own.
type Host struct {
	Index int
	IP    net.IP
	// EtcdOnly marks an external etcd member's machine.
	EtcdOnly bool
}

func (h Host) kind() string {
	if h.EtcdOnly {
		return "etcd"
	}
	return "cp"
}

// Name is the host's machine name, which kubeadm uses as etcd member name and
// certificate subject.
func (c Cluster) HostName(h Host) string { return fmt.Sprintf("%s-%s-%d", c.Name, h.kind(), h.Index) }

// HostDir is the host's folder: its /etc/kubernetes (pki/, *.conf) and etcd data.
func (c Cluster) HostDir(h Host) string {
	return filepath.Join(c.Dir, fmt.Sprintf("%s-%d", h.kind(), h.Index))
}

// PKIDir is the host's /etc/kubernetes/pki.
func (c Cluster) PKIDir(h Host) string { return filepath.Join(c.HostDir(h), "pki") }

// APIServerURL is the URL of the host's own kube-apiserver.
func (h Host) APIServerURL() string {
	return "https://" + net.JoinHostPort(h.IP.String(), fmt.Sprint(APIServerPort))
}

// EndpointURL is the URL clients use for the cluster.
func (c Cluster) EndpointURL() string { return "https://" + c.EndpointIP.String() }

// Component is one process of the control plane.
type Component struct {
	// Name identifies the process within its cluster, e.g. "kube-apiserver-0".
	Name string
	// Program is the upstream component the multi-call binary runs.
	Program string
	Args    []string
	Env     []string
	// HealthURL answers 200 once the component is up (https, no client auth).
	HealthURL string
}

func hostPort(ip net.IP, port int) string { return net.JoinHostPort(ip.String(), fmt.Sprint(port)) }

// Etcd is the host's etcd member: beside its kube-apiserver (stacked), or
// on a machine of its own (external). initialCluster lists every member as
// name=peerURL.
func Etcd(c Cluster, h Host, initialCluster []string, state string) Component {
	pki := c.PKIDir(h)
	var beat []string
	if c.LoneEtcd {
		beat = loneBeat
	}
	m := etcdMember{
		name: c.HostName(h), dataDir: filepath.Join(c.HostDir(h), "etcd"), ip: h.IP,
		initialCluster: initialCluster, state: state,
		server: filepath.Join(pki, "etcd/server"), peer: filepath.Join(pki, "etcd/peer"), ca: filepath.Join(pki, "etcd/ca"),
	}
	return m.component(fmt.Sprintf("etcd-%d", h.Index), beat...)
}

// etcdMember is what tells etcd members apart.
type etcdMember struct {
	name, dataDir  string
	ip             net.IP
	initialCluster []string
	state          string
	// server, peer and ca are certificate files, without ".crt" (or ".key").
	server, peer, ca string
}

// component is the member's process, called name, with its own flags
// after those every member has.
func (m etcdMember) component(name string, own ...string) Component {
	clientURL := "https://" + hostPort(m.ip, EtcdClientPort)
	peerURL := "https://" + hostPort(m.ip, EtcdPeerPort)
	return Component{
		Name:    name,
		Program: "etcd",
		Args: append([]string{
			"--name=" + m.name,
			"--data-dir=" + m.dataDir,
			"--advertise-client-urls=" + clientURL,
			"--listen-client-urls=" + clientURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-cluster=" + strings.Join(m.initialCluster, ","),
			"--initial-cluster-state=" + m.state,
			"--listen-metrics-urls=http://" + hostPort(m.ip, 2381),
			"--cert-file=" + m.server + ".crt",
			"--key-file=" + m.server + ".key",
			"--client-cert-auth=true",
			"--trusted-ca-file=" + m.ca + ".crt",
			"--peer-cert-file=" + m.peer + ".crt",
			"--peer-key-file=" + m.peer + ".key",
			"--peer-client-cert-auth=true",
			"--peer-trusted-ca-file=" + m.ca + ".crt",
			"--snapshot-count=10000",
			"--log-level=warn",
		}, own...),
		Env:       []string{runtimePace},
		HealthURL: "http://" + hostPort(m.ip, 2381) + "/health",
	}
}

// loneBeat is the heartbeat of a single-member etcd (see LoneEtcd).
var loneBeat = []string{"--heartbeat-interval=200", "--election-timeout=1000"}

// EtcdMember is the initial-cluster entry of host h.
func EtcdMember(c Cluster, h Host) string { return c.HostName(h) + "=" + EtcdPeerURL(h) }

// EtcdPeerURL is host h's etcd peer URL.
func EtcdPeerURL(h Host) string { return "https://" + hostPort(h.IP, EtcdPeerPort) }

// EtcdClientURL is host h's etcd client URL.
func EtcdClientURL(h Host) string { return "https://" + hostPort(h.IP, EtcdClientPort) }

// WebhookConfigFile is where the host's token webhook kubeconfig lives.
func (c Cluster) WebhookConfigFile(h Host) string {
	return filepath.Join(c.HostDir(h), "authn-webhook.conf")
}

// APIServer is the host's kube-apiserver, flags as kubeadm sets them.
func APIServer(c Cluster, h Host, etcdServers []string) Component {
	pki := c.PKIDir(h)
	f := func(name string) string { return filepath.Join(pki, name) }
	// Every replica advertises the cluster's internal endpoint, which the
	// load balancer serves in the VPC network: the lease reconciler keeps
	// it as the "kubernetes" Service's endpoint while any replica runs
	// (it never empties the Endpoints as the last lease goes). Replica
	// addresses are loopback ones, which Endpoints may not hold.
	advertise, reconciler := c.InternalEndpointIP, []string{"--endpoint-reconciler-type=lease"}
	if advertise == nil {
		advertise, reconciler = h.IP, []string{"--endpoint-reconciler-type=none"}
	}
	return Component{
		Name:    fmt.Sprintf("kube-apiserver-%d", h.Index),
		Program: "kube-apiserver",
		Args: append([]string{
			"--advertise-address=" + advertise.String(),
			"--bind-address=" + h.IP.String(),
			fmt.Sprintf("--secure-port=%d", APIServerPort),
			"--allow-privileged=true",
			"--authorization-mode=Node,RBAC",
			"--client-ca-file=" + f("ca-bundle.crt"),
			"--enable-admission-plugins=NodeRestriction",
			"--enable-bootstrap-token-auth=true",
			"--etcd-cafile=" + f("etcd/ca.crt"),
			"--etcd-certfile=" + f("apiserver-etcd-client.crt"),
			"--etcd-keyfile=" + f("apiserver-etcd-client.key"),
			"--etcd-servers=" + strings.Join(etcdServers, ","),
			"--kubelet-client-certificate=" + f("apiserver-kubelet-client.crt"),
			"--kubelet-client-key=" + f("apiserver-kubelet-client.key"),
			// Nodes report their kubelet's loopback address as Hostname; their
			// InternalIP is a simulated VPC address nothing may dial.
			"--kubelet-preferred-address-types=Hostname",
			"--proxy-client-cert-file=" + f("front-proxy-client.crt"),
			"--proxy-client-key-file=" + f("front-proxy-client.key"),
			"--requestheader-allowed-names=front-proxy-client",
			"--requestheader-client-ca-file=" + f("front-proxy-ca.crt"),
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-username-headers=X-Remote-User",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + f("sa.pub"),
			"--service-account-signing-key-file=" + f("sa.key"),
			"--service-cluster-ip-range=" + c.ServiceCIDR,
			"--tls-cert-file=" + f("apiserver.crt"),
			"--tls-private-key-file=" + f("apiserver.key"),
			"--authentication-token-webhook-config-file=" + c.WebhookConfigFile(h),
			"--authentication-token-webhook-version=v1",
			"--authentication-token-webhook-cache-ttl=30s",
			// Graceful drain: /readyz fails first so that the load balancer
			// stops sending, then in-flight requests finish.
			"--shutdown-delay-duration=2s",
			"--shutdown-send-retry-after=true",
		}, append(reconciler, c.sharedEtcdFlags()...)...),
		Env:       []string{runtimePace},
		HealthURL: h.APIServerURL() + "/readyz",
	}
}

// sharedEtcdFlags are kube-apiserver's flags for a shared etcd: its keys
// under the cluster's prefix, and no compaction, which etcd allows only to
// its root user (the shared etcd compacts itself).
func (c Cluster) sharedEtcdFlags() []string {
	if c.EtcdPrefix == "" {
		return nil
	}
	return []string{"--etcd-prefix=" + c.EtcdPrefix, "--etcd-compaction-interval=0"}
}

// SharedEtcd is the etcd that clusters of the shared topology keep their
// state in, each under a key prefix and with an etcd user of its own (as
// Kamaji's shared datastore): one member at ip, its data and certificates
// under dir. Clients authenticate with certificates whose common name is
// their etcd user; the member compacts its history itself, every 5
// minutes as kube-apiserver would.
func SharedEtcd(dir string, ip net.IP) Component {
	pki := filepath.Join(dir, "pki")
	const name = "kubeyard-shared"
	m := etcdMember{
		name: name, dataDir: filepath.Join(dir, "data"), ip: ip,
		initialCluster: []string{name + "=https://" + hostPort(ip, EtcdPeerPort)}, state: "new",
		server: filepath.Join(pki, "server"), peer: filepath.Join(pki, "server"), ca: filepath.Join(pki, "ca"),
	}
	return m.component("etcd-shared", append([]string{
		"--auto-compaction-mode=periodic",
		"--auto-compaction-retention=5m",
		// Many clusters' objects: etcd's largest recommended quota.
		"--quota-backend-bytes=8589934592",
	}, loneBeat...)...)
}

// runtimePace paces the Go runtime of every control-plane process (see
// pace): GOGC 50 while idle, for an idle cluster's memory, and 200 while
// busy, for its CPU; one processor while idle, all of them while busy.
const runtimePace = pace.Env + "=50,200,1"

// clientQPS and clientBurst are the controller-manager's and scheduler's
// client limits.
const clientQPS, clientBurst = "500", "1000"

// The controller-manager's and scheduler's leader election: the holder
// renews its lease every 10 s rather than upstream's 2 s, which was most of
// an idle cluster's writes (a Lease PUT a second). Both hand the lease over
// when they stop, so a restart waits for nothing; a replica that dies is
// replaced within the lease's 30 s (upstream: 15 s).
const (
	leaderElectLease = "--leader-elect-lease-duration=30s"
	leaderElectRenew = "--leader-elect-renew-deadline=25s"
	leaderElectRetry = "--leader-elect-retry-period=10s"
)

// ControllerManager is the host's kube-controller-manager.
func ControllerManager(c Cluster, h Host) Component {
	pki := c.PKIDir(h)
	conf := filepath.Join(c.HostDir(h), "controller-manager.conf")
	return Component{
		Name:    fmt.Sprintf("kube-controller-manager-%d", h.Index),
		Program: "kube-controller-manager",
		Args: []string{
			"--allocate-node-cidrs=true",
			"--cluster-cidr=" + c.PodCIDR,
			fmt.Sprintf("--node-cidr-mask-size=%d", c.NodeMaskSize),
			"--authentication-kubeconfig=" + conf,
			"--authorization-kubeconfig=" + conf,
			"--kubeconfig=" + conf,
			"--bind-address=" + h.IP.String(),
			fmt.Sprintf("--secure-port=%d", ControllerManagerPort),
			"--client-ca-file=" + filepath.Join(pki, "ca-bundle.crt"),
			"--cluster-name=" + c.Name,
			"--cluster-signing-cert-file=" + filepath.Join(pki, "ca.crt"),
			"--cluster-signing-key-file=" + filepath.Join(pki, "ca.key"),
			"--controllers=*,bootstrapsigner,tokencleaner",
			// Upstream's client limits (20/s) make a Deployment of 10,000
			// pods take minutes of rate limiting; the apiserver's priority
			// and fairness is what protects it, as for KWOK's clusters.
			"--kube-api-qps=" + clientQPS, "--kube-api-burst=" + clientBurst,
			// A controller-manager that stops hands its lease over at once,
			// so that a rolling restart (a CA rotation) leaves no 15 s gap
			// without CSR signing and kube-root-ca.crt publishing.
			"--feature-gates=ControllerManagerReleaseLeaderElectionLockOnExit=true",
			"--leader-elect=true",
			leaderElectLease, leaderElectRenew, leaderElectRetry,
			"--requestheader-client-ca-file=" + filepath.Join(pki, "front-proxy-ca.crt"),
			// What the cluster trusts, published as kube-root-ca.crt; the
			// signing CA above is one certificate (see pki.BundleFile).
			"--root-ca-file=" + filepath.Join(pki, "ca-bundle.crt"),
			"--service-account-private-key-file=" + filepath.Join(pki, "sa.key"),
			"--service-cluster-ip-range=" + c.ServiceCIDR,
			"--use-service-account-credentials=true",
		},
		Env:       []string{runtimePace},
		HealthURL: "https://" + hostPort(h.IP, ControllerManagerPort) + "/healthz",
	}
}

// Scheduler is the host's kube-scheduler.
func Scheduler(c Cluster, h Host) Component {
	conf := filepath.Join(c.HostDir(h), "scheduler.conf")
	return Component{
		Name:    fmt.Sprintf("kube-scheduler-%d", h.Index),
		Program: "kube-scheduler",
		Args: []string{
			"--authentication-kubeconfig=" + conf,
			"--authorization-kubeconfig=" + conf,
			"--kubeconfig=" + conf,
			"--bind-address=" + h.IP.String(),
			fmt.Sprintf("--secure-port=%d", SchedulerPort),
			"--kube-api-qps=" + clientQPS, "--kube-api-burst=" + clientBurst, // as the controller-manager's
			"--leader-elect=true",
			leaderElectLease, leaderElectRenew, leaderElectRetry,
		},
		Env:       []string{runtimePace},
		HealthURL: "https://" + hostPort(h.IP, SchedulerPort) + "/healthz",
	}
}

// ControllerServiceAccounts are the kube-system service accounts that
// kube-controller-manager, run with --use-service-account-credentials,
// creates for its controllers. It creates them one at a time, which is most
// of a cold start; the cluster runtime creates them up front, in parallel.
// A name missing here is still created by kube-controller-manager itself.
var ControllerServiceAccounts = []string{
	"attachdetach-controller", "bootstrap-signer", "certificate-controller", "clusterrole-aggregation-controller",
	"cronjob-controller", "daemon-set-controller", "deployment-controller", "device-taint-eviction-controller",
	"disruption-controller", "endpoint-controller", "endpointslice-controller", "endpointslicemirroring-controller",
	"ephemeral-volume-controller", "expand-controller", "generic-garbage-collector", "horizontal-pod-autoscaler",
	"job-controller", "kube-apiserver-serving-clustertrustbundle-publisher", "legacy-service-account-token-cleaner",
	"namespace-controller", "node-controller", "persistent-volume-binder", "pod-garbage-collector",
	"podcertificaterequestcleaner", "pv-protection-controller", "pvc-protection-controller", "replicaset-controller",
	"replication-controller", "resource-claim-controller", "resourcequota-controller", "root-ca-cert-publisher",
	"service-account-controller", "service-cidrs-controller", "statefulset-controller",
	"storage-version-migrator-controller", "token-cleaner", "ttl-after-finished-controller", "ttl-controller",
	"validatingadmissionpolicy-status-controller", "volumeattributesclass-protection-controller",
}
