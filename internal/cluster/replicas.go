package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/pki"
)

// etcdMembership is how a stacked member joined: the initial cluster and
// state its etcd starts with. kubeadm writes them into the member's static
// pod manifest when it joins; kubeyard keeps them beside the host's PKI, so
// that the member is started the same way every time after.
type etcdMembership struct {
	InitialCluster []string `json:"initialCluster"`
	State          string   `json:"state"`
}

func membershipFile(s Spec, h controlplane.Host) string {
	return filepath.Join(s.HostDir(h), "etcd-membership.json")
}

// stackedMember is host h's etcd member. Without a recorded membership it
// is the one a first create gives: host 0 starts a new cluster, host i
// joined hosts 0..i-1.
func stackedMember(s Spec, h controlplane.Host) (controlplane.Component, error) {
	data, err := os.ReadFile(membershipFile(s, h))
	if err == nil {
		var m etcdMembership
		if err := json.Unmarshal(data, &m); err != nil {
			return controlplane.Component{}, fmt.Errorf("cluster %s: %s: %w", s.Name, membershipFile(s, h), err)
		}
		return controlplane.Etcd(s.Cluster, h, m.InitialCluster, m.State), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return controlplane.Component{}, err
	}
	var members []string
	for _, m := range s.Hosts[:h.Index+1] {
		members = append(members, controlplane.EtcdMember(s.Cluster, m))
	}
	state := "new"
	if h.Index > 0 {
		state = "existing"
	}
	return controlplane.Etcd(s.Cluster, h, members, state), nil
}

// recordMembership writes how host h's member joins, before it does, when
// it has no data yet: a member that joins must never start as a new
// cluster of its own, even when the join is interrupted and resumed.
func recordMembership(s Spec, h controlplane.Host, members []controlplane.Host) error {
	if _, err := os.Stat(filepath.Join(s.HostDir(h), "etcd")); err == nil {
		return nil // an existing member: it starts from its data
	}
	if _, err := os.Stat(membershipFile(s, h)); err == nil {
		return nil
	}
	m := etcdMembership{State: "existing"}
	for _, o := range s.Hosts {
		if o.Index == h.Index || containsHost(members, o) {
			m.InitialCluster = append(m.InitialCluster, controlplane.EtcdMember(s.Cluster, o))
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return pki.WriteFile(membershipFile(s, h), data)
}

// joiner joins control-plane hosts to a running cluster (kubeadm join
// --control-plane), creating the token and uploading the certificates once,
// for the first host that needs them.
type joiner struct {
	r       *Runtime
	s       Spec
	client  kubernetes.Interface
	cfg     join.Config
	certKey string
}

// ensure makes host h a running replica: it joins if it has no PKI yet
// (a new or replaced machine); otherwise its processes are (re)started.
// Every step is idempotent, so an interrupted join resumes.
func (j *joiner) ensure(ctx context.Context, h controlplane.Host) error {
	s := j.s
	if !pki.Exists(s.PKIDir(h), "ca") {
		if err := j.prepare(ctx); err != nil {
			return err
		}
		joinCtx, cancel := context.WithTimeout(ctx, j.r.cfg.ReadyTimeout)
		cfg := j.cfg
		cfg.SourceIP = h.IP // the joining machine's own address
		err := JoinControlPlaneHost(joinCtx, s, h, cfg, j.certKey)
		cancel()
		if err != nil {
			return fmt.Errorf("cluster %s: join %s: %w", s.Name, s.HostName(h), err)
		}
	}
	if err := j.r.ensureHostFiles(s, h, j.r.cfg.Clock.Now()); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	apiserver := controlplane.APIServer(s.Cluster, h, etcdServers(s, h))
	if s.ExternalEtcd() {
		return j.r.run(ctx, s, apiserver)
	}
	// The new member starts as a learner, which serves no requests (and
	// does not count towards quorum): promote it once it has caught up, and
	// only then start the kube-apiserver that talks to it.
	members := s.members(h)
	if err := recordMembership(s, h, members); err != nil {
		return err
	}
	peer := controlplane.EtcdPeerURL(h)
	if err := addEtcdLearner(ctx, viaHosts(s, members), peer); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	etcd, err := stackedMember(s, h)
	if err != nil {
		return err
	}
	if err := j.r.start(s, etcd); err != nil {
		return err
	}
	if err := promoteEtcdMember(ctx, viaHosts(s, members), peer); err != nil {
		return fmt.Errorf("cluster %s: %w", s.Name, err)
	}
	return j.r.run(ctx, s, etcd, apiserver)
}

// prepare is kubeadm init's --upload-certs and a token for the joins.
func (j *joiner) prepare(ctx context.Context) error {
	if j.certKey != "" {
		return nil
	}
	key, err := join.NewCertificateKey()
	if err != nil {
		return err
	}
	if err := join.UploadCerts(ctx, j.client, j.s.SharedPKIDir(), key); err != nil {
		return fmt.Errorf("cluster %s: upload certs: %w", j.s.Name, err)
	}
	tok, err := join.CreateBootstrapToken(ctx, j.client, join.Token{TTL: time.Hour, Description: "kubeyard control-plane join", ForJoining: true})
	if err != nil {
		return err
	}
	pin, err := caPin(j.s)
	if err != nil {
		return err
	}
	cfg := join.Config{Endpoint: j.s.Endpoint(), SourceIP: j.s.sourceIP(), Token: tok.Token, CACertHashes: []string{pin}}
	// Discovery succeeds once the bootstrap signer has signed cluster-info
	// for the token: wait for that here, while the signer surely runs.
	ctx, cancel := context.WithTimeout(ctx, j.r.cfg.ReadyTimeout)
	defer cancel()
	if _, _, err := join.Discover(ctx, cfg); err != nil {
		return fmt.Errorf("cluster %s: join token: %w", j.s.Name, err)
	}
	j.cfg, j.certKey = cfg, key
	return nil
}

// members are the hosts other than h that hold the cluster's PKI: the
// etcd members h joins (stacked topology).
func (s Spec) members(h controlplane.Host) []controlplane.Host {
	var out []controlplane.Host
	for _, o := range s.Hosts {
		if o.Index != h.Index && pki.Exists(s.PKIDir(o), "ca") {
			out = append(out, o)
		}
	}
	return out
}

func containsHost(hosts []controlplane.Host, h controlplane.Host) bool {
	for _, o := range hosts {
		if o.Index == h.Index {
			return true
		}
	}
	return false
}

// SharedPKIDir is the PKI folder of a host that holds the cluster's shared
// certificates (the source for kubeadm-certs uploads).
func (s Spec) SharedPKIDir() string {
	h, _ := s.pkiHost()
	return s.PKIDir(h)
}

// ErrWouldLoseQuorum refuses a replacement that would leave etcd (or the
// cluster's kube-apiservers) without a majority.
var ErrWouldLoseQuorum = errors.New("recreating a control-plane replica now would lose quorum")

// CheckHealthy says whether every replica's kube-apiserver is ready and,
// when stacked, every etcd member is a healthy voting member: replacing a
// replica (one member out at a time) then keeps quorum all the way.
func (r *Runtime) CheckHealthy(ctx context.Context, s Spec) error {
	return r.checkOthers(ctx, s, controlplane.Host{Index: -1})
}

// checkOthers checks every replica but h.
func (r *Runtime) checkOthers(ctx context.Context, s Spec, h controlplane.Host) error {
	var bad []string
	check := func(name string, probe func(context.Context) error) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := probe(ctx); err != nil {
			bad = append(bad, fmt.Sprintf("%s (%v)", name, err))
		}
	}
	for _, o := range s.Hosts {
		if o.Index == h.Index {
			continue
		}
		check(fmt.Sprintf("kube-apiserver-%d", o.Index), func(ctx context.Context) error { return healthy(ctx, o.APIServerURL()+"/readyz") })
		if !s.ExternalEtcd() && len(s.Hosts) > 1 {
			check(fmt.Sprintf("etcd-%d", o.Index), func(ctx context.Context) error { return etcdMemberHealthy(ctx, s, o) })
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w; not healthy: %s", ErrWouldLoseQuorum, strings.Join(bad, ", "))
	}
	return nil
}

// ReplaceHost replaces control-plane replica h with a new machine, the
// kubeadm way: its processes stop (the kube-apiserver drains first), its
// etcd member is removed, its folder is wiped, and it joins again with new
// certificates and a new member that catches up as a learner. Every other
// replica must be healthy first. A zonal cluster's only replica restarts
// in place instead: its etcd data is the cluster.
func (r *Runtime) ReplaceHost(ctx context.Context, s Spec, h controlplane.Host) error {
	j := &joiner{r: r, s: s}
	if len(s.Hosts) > 1 {
		if err := r.checkOthers(ctx, s, h); err != nil {
			return err
		}
		// The join token is made and signed while every replica runs: the
		// bootstrap signer may run in the controller-manager about to stop,
		// and its successor would take over only when its lease expires.
		client, err := r.AdminClient(s)
		if err != nil {
			return err
		}
		j.client = client
		if err := j.prepare(ctx); err != nil {
			return err
		}
	}
	r.stopHost(h, s)
	if len(s.Hosts) > 1 {
		if !s.ExternalEtcd() {
			if err := removeEtcdMember(ctx, viaHosts(s, s.members(h)), controlplane.EtcdPeerURL(h)); err != nil {
				return fmt.Errorf("cluster %s: %w", s.Name, err)
			}
		}
		if err := os.RemoveAll(s.HostDir(h)); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	return r.ensureControlPlane(ctx, s, j)
}

// stopHost stops host h's processes in stopOrder.
func (r *Runtime) stopHost(h controlplane.Host, s Spec) {
	for _, program := range stopOrder {
		_ = r.cfg.Supervisor.Stop(s.ID + "/" + fmt.Sprintf("%s-%d", program, h.Index))
	}
}
