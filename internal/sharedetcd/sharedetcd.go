// Package sharedetcd runs the engine's shared etcd: one etcd member that
// holds the state of every cluster created with the shared topology, as
// Kamaji's shared datastore does. Each cluster (a tenant) keeps its keys
// under a prefix of its own, and its kube-apiserver reaches etcd as an etcd
// user of its own, named by its client certificate, whose role may read and
// write that prefix and nothing else: one cluster's credentials cannot read
// another's keys.
package sharedetcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/etcdclient"
	"github.com/kubeyard/kubeyard/internal/pki"
	"github.com/kubeyard/kubeyard/internal/poll"
	"github.com/kubeyard/kubeyard/internal/supervisor"
)

// ProcessName is the supervisor's name for the shared etcd. Its component
// part ("etcd-...") makes it stop after every kube-apiserver, as a
// cluster's own etcd does.
const ProcessName = "shared-etcd/etcd-shared"

// Server is the shared etcd of an engine.
type Server struct {
	// Dir holds its data and certificates; RunDir and LogDir its pidfile
	// and log.
	Dir, RunDir, LogDir string
	Supervisor          *supervisor.Supervisor
	// ReadyTimeout bounds how long it may take to answer.
	ReadyTimeout time.Duration

	mu sync.Mutex // one Ensure at a time: the first sets up PKI and auth
}

// Prefix is the key prefix of cluster id's objects.
func Prefix(id string) string { return "/clusters/" + id + "/" }

// User is the etcd user (and role) of cluster id.
func User(id string) string { return "cluster-" + id }

// rootUser is etcd's administrator, whose certificate only the engine holds.
const rootUser = "root"

// ClientURL is the shared etcd's client URL at ip.
func ClientURL(ip net.IP) string { return controlplane.EtcdClientURL(controlplane.Host{IP: ip}) }

func (s *Server) pkiDir() string { return filepath.Join(s.Dir, "pki") }

// Ensure brings the shared etcd up at ip, or adopts the one that runs, with
// its CA, its serving certificate and the engine's root certificate, and
// with authentication on.
func (s *Server) Ensure(ctx context.Context, ip net.IP, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensurePKI(ip, now); err != nil {
		return fmt.Errorf("shared etcd: %w", err)
	}
	comp := controlplane.SharedEtcd(s.Dir, ip)
	err := s.Supervisor.Ensure(ProcessName, supervisor.Process{
		Args:    append([]string{"component", comp.Program}, comp.Args...),
		Env:     comp.Env,
		PIDFile: filepath.Join(s.RunDir, "shared-etcd.pid"),
		LogFile: filepath.Join(s.LogDir, "shared-etcd.log"),
	})
	if err != nil {
		return fmt.Errorf("shared etcd: %w", err)
	}
	return s.withRoot(ctx, ip, enableAuth)
}

// ensurePKI makes the shared etcd's CA, its serving certificate for ip and
// the root user's client certificate, keeping those that exist.
func (s *Server) ensurePKI(ip net.IP, now time.Time) error {
	dir := s.pkiDir()
	if !pki.Exists(dir, "ca") {
		ca, err := pki.NewCA("kubeyard-shared-etcd-ca", now)
		if err != nil {
			return err
		}
		if err := ca.Write(dir, "ca"); err != nil {
			return err
		}
	}
	ca, err := pki.Load(dir, "ca")
	if err != nil {
		return err
	}
	leaves := map[string]pki.Leaf{
		"server": {CommonName: "kubeyard-shared", DNSNames: []string{"localhost"}, IPs: []net.IP{ip}, Usages: pki.ServerClientUsage},
		"root":   {CommonName: rootUser, Usages: pki.ClientUsage},
	}
	for name, leaf := range leaves {
		if cur, err := pki.Load(dir, name); err == nil && cur.Cert.CheckSignatureFrom(ca.Cert) == nil && (name != "server" || slices.ContainsFunc(cur.Cert.IPAddresses, ip.Equal)) {
			continue
		}
		kp, err := ca.Issue(leaf, now)
		if err != nil {
			return err
		}
		if err := kp.Write(dir, name); err != nil {
			return err
		}
	}
	return nil
}

// enableAuth turns etcd's authentication on, with the root user, unless
// it is on: from then on a client is the user its certificate names.
func enableAuth(ctx context.Context, cli *clientv3.Client) error {
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return err
	}
	if st.Enabled {
		return nil
	}
	if _, err := cli.UserAddWithOptions(ctx, rootUser, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return err
	}
	if _, err := cli.UserGrantRole(ctx, rootUser, "root"); err != nil {
		return err
	}
	_, err = cli.AuthEnable(ctx)
	return err
}

// AddTenant gives cluster id its etcd user, whose role may read and write
// the cluster's prefix only, and writes into the cluster's PKI folder what
// its kube-apiserver needs: the shared etcd's CA certificate (not its key)
// as etcd/ca.crt, and a client certificate naming the user as
// apiserver-etcd-client. Run again, it changes nothing.
func (s *Server) AddTenant(ctx context.Context, ip net.IP, id, pkiDir string, now time.Time) error {
	user, prefix := User(id), Prefix(id)
	err := s.withRoot(ctx, ip, func(ctx context.Context, cli *clientv3.Client) error {
		if _, err := cli.RoleAdd(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return err
		}
		if _, err := cli.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
			return err
		}
		if _, err := cli.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
			return err
		}
		_, err := cli.UserGrantRole(ctx, user, user)
		return err
	})
	if err != nil {
		return err
	}
	ca, err := pki.Load(s.pkiDir(), "ca")
	if err != nil {
		return fmt.Errorf("shared etcd: %w", err)
	}
	if err := pki.WriteFile(filepath.Join(pkiDir, "etcd/ca.crt"), ca.CertPEM()); err != nil {
		return err
	}
	if cur, err := pki.Load(pkiDir, "apiserver-etcd-client"); err == nil && cur.Cert.Subject.CommonName == user && cur.Cert.CheckSignatureFrom(ca.Cert) == nil {
		return nil
	}
	kp, err := ca.Issue(pki.Leaf{CommonName: user, Usages: pki.ClientUsage}, now)
	if err != nil {
		return err
	}
	return kp.Write(pkiDir, "apiserver-etcd-client")
}

// RemoveTenant deletes cluster id's keys, its etcd user and its role.
func (s *Server) RemoveTenant(ctx context.Context, ip net.IP, id string) error {
	user := User(id)
	return s.withRoot(ctx, ip, func(ctx context.Context, cli *clientv3.Client) error {
		if _, err := cli.Delete(ctx, Prefix(id), clientv3.WithPrefix()); err != nil {
			return err
		}
		if _, err := cli.UserDelete(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrUserNotFound) {
			return err
		}
		if _, err := cli.RoleDelete(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrRoleNotFound) {
			return err
		}
		return nil
	})
}

// withRoot runs step as etcd's root user until it succeeds (the member may
// still be starting) or the ready timeout passes.
func (s *Server) withRoot(ctx context.Context, ip net.IP, step func(context.Context, *clientv3.Client) error) error {
	dir := s.pkiDir()
	cli, err := etcdclient.New([]string{ClientURL(ip)}, filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		return fmt.Errorf("shared etcd: %w", err)
	}
	defer cli.Close()
	timeout := s.ReadyTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := poll.Until(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return step(ctx, cli)
	}); err != nil {
		return fmt.Errorf("shared etcd at %s (log: %s): %w", ip, filepath.Join(s.LogDir, "shared-etcd.log"), err)
	}
	return nil
}
