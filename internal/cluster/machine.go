package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/supervisor"
)

// MachineConfig is a control-plane machine that joins a cluster from
// outside the engine: `kubeyard join --control-plane`, started with
// another data dir standing in for another machine.
type MachineConfig struct {
	// Dir is the machine's folder: its /etc/kubernetes, etcd data and logs.
	Dir string
	// IP is the machine's advertise address (a loopback address here).
	IP             net.IP
	Join           join.Config
	CertificateKey string
	Supervisor     *supervisor.Supervisor
	Clock          clock.Clock
	Logger         *slog.Logger
}

// Machine is a control-plane machine that joined a cluster.
type Machine struct {
	rt     *Runtime
	s      Spec // the machine's view: one host, its own folder
	h      controlplane.Host
	others etcdAccess // the other stacked members; none when etcd is external
	admin  kubernetes.Interface
}

// JoinMachine is `kubeadm join --control-plane` on a machine of its own:
// discovery pins the cluster CA, the shared certificates come from the
// kubeadm-certs Secret (a wrong key writes nothing), the machine issues its
// own leaf certificates, joins etcd as a learner (stacked topology), starts
// its kube-apiserver, controller-manager and scheduler, and registers in
// the cluster's registry, so that the cluster's load balancer sends it
// traffic.
func JoinMachine(ctx context.Context, cfg MachineConfig) (_ *Machine, err error) {
	rt, err := New(Config{Supervisor: cfg.Supervisor, LoadBalancerDir: "-", Clock: cfg.Clock, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	_, bootstrap, err := join.Discover(ctx, cfg.Join)
	if err != nil {
		return nil, err
	}
	g, _, err := ReadRegistry(ctx, bootstrap)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(g.Replicas, func(r Replica) bool { return r.IP == cfg.IP.String() }) {
		return nil, fmt.Errorf("cluster: %s is a control-plane replica already", cfg.IP)
	}
	h := controlplane.Host{IP: cfg.IP}
	for _, r := range g.Replicas {
		h.Index = max(h.Index, r.Index+1)
	}
	_, port, err := net.SplitHostPort(cfg.Join.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("cluster: endpoint %q: %w", cfg.Join.Endpoint, err)
	}
	endpointPort, _ := strconv.Atoi(port)
	m := &Machine{rt: rt, h: h, s: g.machineSpec(cfg.Dir, h, endpointPort)}
	s := m.s
	if err := join.DownloadCerts(ctx, bootstrap, cfg.CertificateKey, s.PKIDir(h)); err != nil {
		return nil, err // nothing written
	}
	// A join that fails half way undoes what it did.
	defer func() {
		if err != nil {
			m.undo()
		}
	}()
	if err := rt.ensureHostFiles(s, h, rt.cfg.Clock.Now()); err != nil {
		return nil, err
	}
	if !s.ExternalEtcd() {
		if err := m.joinEtcd(ctx, g); err != nil {
			return nil, err
		}
	}
	comps := []controlplane.Component{
		controlplane.APIServer(s.Cluster, h, etcdServers(s, h)),
		controlplane.ControllerManager(s.Cluster, h),
		controlplane.Scheduler(s.Cluster, h),
	}
	if err := rt.run(ctx, s, comps...); err != nil {
		return nil, err
	}
	cfgAdmin, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s.HostDir(h), "admin.conf"))
	if err != nil {
		return nil, err
	}
	if m.admin, err = kubernetes.NewForConfig(cfgAdmin); err != nil {
		return nil, err
	}
	err = UpdateRegistry(ctx, m.admin, func(g *Registry) {
		g.Replicas = append(g.Replicas, Replica{Index: h.Index, IP: h.IP.String(), Joined: true})
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: register the replica: %w", err)
	}
	return m, nil
}

// joinEtcd adds the machine's member as a learner, starts it, and promotes
// it once it has caught up.
func (m *Machine) joinEtcd(ctx context.Context, g Registry) error {
	s, h := m.s, m.h
	m.others = etcdAccess{certDir: s.PKIDir(h)}
	initial := []string{controlplane.EtcdMember(s.Cluster, h)}
	for _, r := range g.Replicas {
		m.others.endpoints = append(m.others.endpoints, controlplane.EtcdClientURL(r.host()))
		initial = append(initial, controlplane.EtcdMember(s.Cluster, r.host()))
	}
	peer := controlplane.EtcdPeerURL(h)
	if err := addEtcdLearner(ctx, m.others, peer); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	etcd := controlplane.Etcd(s.Cluster, h, initial, "existing")
	if err := m.rt.start(s, etcd); err != nil {
		return err
	}
	if err := promoteEtcdMember(ctx, m.others, peer); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return m.rt.waitHealthy(ctx, s, etcd)
}

// undo stops what a failed join started and removes its member and files.
func (m *Machine) undo() {
	m.rt.StopProcesses(m.s.ID + "/")
	if len(m.others.endpoints) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = removeEtcdMember(ctx, m.others, controlplane.EtcdPeerURL(m.h))
	}
	_ = os.RemoveAll(m.s.HostDir(m.h))
}

// Name is the machine's name in the cluster.
func (m *Machine) Name() string { return m.s.HostName(m.h) }

// Leave is `kubeadm reset` on the machine: it unregisters (the load
// balancer stops sending it traffic), stops its processes (the
// kube-apiserver drains), removes its etcd member, and deletes its
// certificates and data.
func (m *Machine) Leave(ctx context.Context) error {
	var errs []error
	if err := UpdateRegistry(ctx, m.admin, func(g *Registry) {
		g.Replicas = slices.DeleteFunc(g.Replicas, func(r Replica) bool { return r.Joined && r.IP == m.h.IP.String() })
	}); err != nil {
		errs = append(errs, fmt.Errorf("unregister: %w", err))
	}
	// The kube-apiserver drains on SIGTERM: its /readyz fails first, and
	// the load balancer stops sending before it stops serving.
	m.rt.StopProcesses(m.s.ID + "/")
	if len(m.others.endpoints) > 0 {
		if err := removeEtcdMember(ctx, m.others, controlplane.EtcdPeerURL(m.h)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(m.s.HostDir(m.h)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
