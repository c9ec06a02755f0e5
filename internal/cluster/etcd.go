package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/etcdclient"
	"github.com/kubeyard/kubeyard/internal/poll"
)

// etcdAccess is how to reach an etcd cluster: its members' client URLs and
// a folder holding an apiserver-etcd-client certificate, as kubeadm's etcd
// client uses.
type etcdAccess struct {
	certDir   string
	endpoints []string
}

// viaHosts reaches the stacked members of hosts with the first one's
// certificate: a joining host may not have one yet, a replaced one no more.
func viaHosts(s Spec, hosts []controlplane.Host) etcdAccess {
	a := etcdAccess{certDir: s.PKIDir(hosts[0])}
	for _, m := range hosts {
		a.endpoints = append(a.endpoints, controlplane.EtcdClientURL(m))
	}
	return a
}

func (a etcdAccess) client() (*clientv3.Client, error) {
	return etcdclient.New(a.endpoints, filepath.Join(a.certDir, "apiserver-etcd-client.crt"), filepath.Join(a.certDir, "apiserver-etcd-client.key"), filepath.Join(a.certDir, "etcd/ca.crt"))
}

// addEtcdLearner adds host h as a learner to the etcd cluster of the hosts
// before it (kubeadm join's etcd step in learner mode: a learner does not
// count towards quorum, so the cluster keeps its quorum while the new member
// starts), unless it is a member already: an interrupted join resumes.
func addEtcdLearner(ctx context.Context, a etcdAccess, peer string) error {
	return onMembership(ctx, a, peer, func(ctx context.Context, cli *clientv3.Client, m *etcdserverpb.Member) error {
		if m != nil {
			return nil
		}
		_, err := cli.MemberAddAsLearner(ctx, []string{peer})
		return err
	})
}

// promoteEtcdMember makes host h's learner a voting member once it has
// caught up with the leader (etcd refuses until then).
func promoteEtcdMember(ctx context.Context, a etcdAccess, peer string) error {
	return onMembership(ctx, a, peer, func(ctx context.Context, cli *clientv3.Client, m *etcdserverpb.Member) error {
		switch {
		case m == nil:
			return fmt.Errorf("%s is not an etcd member", peer)
		case !m.IsLearner:
			return nil
		}
		_, err := cli.MemberPromote(ctx, m.ID)
		return err
	})
}

// removeEtcdMember removes host h's member, if it is one (etcdctl member
// remove), through the other members.
func removeEtcdMember(ctx context.Context, a etcdAccess, peer string) error {
	return onMembership(ctx, a, peer, func(ctx context.Context, cli *clientv3.Client, m *etcdserverpb.Member) error {
		if m == nil {
			return nil
		}
		_, err := cli.MemberRemove(ctx, m.ID)
		return err
	})
}

// etcdMemberHealthy says whether host h's member answers and votes.
func etcdMemberHealthy(ctx context.Context, s Spec, h controlplane.Host) error {
	cli, err := viaHosts(s, []controlplane.Host{h}).client()
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

// onMembership calls step with the entry of the member with the peer URL
// in the etcd member list (nil when it is not a member) until step succeeds
// or a minute has passed.
func onMembership(ctx context.Context, a etcdAccess, peer string, step func(context.Context, *clientv3.Client, *etcdserverpb.Member) error) error {
	cli, err := a.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
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
