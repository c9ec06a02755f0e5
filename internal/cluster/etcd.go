package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/poll"
)

// etcdClient connects to the given members with host h's
// apiserver-etcd-client certificate, as kubeadm's etcd client does.
func etcdClient(s Spec, h controlplane.Host, members []controlplane.Host) (*clientv3.Client, error) {
	dir := s.PKIDir(h)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "apiserver-etcd-client.crt"), filepath.Join(dir, "apiserver-etcd-client.key"))
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "etcd/ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, controlplane.EtcdClientURL(m))
	}
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool},
	})
}

// addEtcdLearner adds host h as a learner to the etcd cluster of the hosts
// before it (kubeadm join's etcd step in learner mode: a learner does not
// count towards quorum, so the cluster keeps its quorum while the new member
// starts), unless it is a member already: an interrupted join resumes.
func addEtcdLearner(ctx context.Context, s Spec, h controlplane.Host, existing []controlplane.Host) error {
	return onMembership(ctx, s, h, existing, func(ctx context.Context, cli *clientv3.Client, m *etcdserverpb.Member) error {
		if m != nil {
			return nil
		}
		_, err := cli.MemberAddAsLearner(ctx, []string{controlplane.EtcdPeerURL(h)})
		return err
	})
}

// promoteEtcdMember makes host h's learner a voting member once it has
// caught up with the leader (etcd refuses until then).
func promoteEtcdMember(ctx context.Context, s Spec, h controlplane.Host, existing []controlplane.Host) error {
	return onMembership(ctx, s, h, existing, func(ctx context.Context, cli *clientv3.Client, m *etcdserverpb.Member) error {
		switch {
		case m == nil:
			return fmt.Errorf("%s is not an etcd member", controlplane.EtcdPeerURL(h))
		case !m.IsLearner:
			return nil
		}
		_, err := cli.MemberPromote(ctx, m.ID)
		return err
	})
}

// removeEtcdMember removes host h's member, if it is one (etcdctl member
// remove), through the other members.
func removeEtcdMember(ctx context.Context, s Spec, h controlplane.Host, others []controlplane.Host) error {
	return onMembership(ctx, s, h, others, func(ctx context.Context, cli *clientv3.Client, m *etcdserverpb.Member) error {
		if m == nil {
			return nil
		}
		_, err := cli.MemberRemove(ctx, m.ID)
		return err
	})
}

// etcdMemberHealthy says whether host h's member answers and votes.
func etcdMemberHealthy(ctx context.Context, s Spec, h controlplane.Host) error {
	cli, err := etcdClient(s, h, []controlplane.Host{h})
	if err != nil {
		return err
	}
	defer cli.Close()
	st, err := cli.Status(ctx, controlplane.EtcdClientURL(h))
	if err != nil {
		return err
	}
	if st.IsLearner {
		return errors.New("a learner")
	}
	if len(st.Errors) > 0 {
		return errors.New(strings.Join(st.Errors, "; "))
	}
	return nil
}

// onMembership calls step with host h's entry in the etcd member list (nil
// when h is not a member) until step succeeds or a minute has passed.
func onMembership(ctx context.Context, s Spec, h controlplane.Host, existing []controlplane.Host, step func(context.Context, *clientv3.Client, *etcdserverpb.Member) error) error {
	// The client certificate of a member: h itself may not have one yet
	// (joining) or any more (replaced).
	cli, err := etcdClient(s, existing[0], existing)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	peer := controlplane.EtcdPeerURL(h)
	err = poll.Until(ctx, func(ctx context.Context) error {
		list, err := cli.MemberList(ctx)
		if err != nil {
			return fmt.Errorf("etcd member list: %w", err)
		}
		for _, m := range list.Members {
			if slices.Contains(m.PeerURLs, peer) {
				return step(ctx, cli, m)
			}
		}
		return step(ctx, cli, nil)
	})
	if err != nil {
		return fmt.Errorf("etcd membership of %s: %w", peer, err)
	}
	return nil
}
