package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestRegionalClusterIsHighlyAvailable: a regional cluster has three
// control-plane replicas joined the kubeadm way (shared certificates through
// the kubeadm-certs Secret, stacked etcd members), and a kube-apiserver
// killed with SIGKILL costs at most the requests in flight on it.
func TestRegionalClusterIsHighlyAvailable(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "ha", "--region", "us-central1", "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")

	nodes := readyNodes(t, e)
	if len(nodes) != 3 {
		t.Fatalf("want 3 Ready nodes (one per zone), got %v", nodes)
	}
	pids := e.ComponentPIDs()
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		for i := range 3 {
			found := false
			for name := range pids {
				found = found || strings.HasPrefix(name, fmt.Sprintf("%s-%d@", c, i))
			}
			if !found {
				t.Errorf("no %s-%d process", c, i)
			}
		}
	}

	clusterDir := e.ClusterDir()
	cp0 := filepath.Join(clusterDir, "cp-0")

	// etcd: three voting members.
	members := etcdMembers(t, cp0)
	if len(members) != 3 {
		t.Fatalf("etcd members: %v", members)
	}
	for _, m := range members {
		if strings.HasSuffix(m, "learner") {
			t.Fatalf("etcd member left a learner: %v", members)
		}
	}

	// The replicas got the shared certificates from kubeadm-certs, owned by a
	// short-lived bootstrap token so that it is garbage-collected: the three
	// CAs with their keys, the trust bundle and the service-account keys
	// (no cross-certificate outside a CA rotation).
	client := e.AdminClient(clusterDir)
	ctx := context.Background()
	secret, err := client.CoreV1().Secrets("kube-system").Get(ctx, "kubeadm-certs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret.OwnerReferences) != 1 || !strings.HasPrefix(secret.OwnerReferences[0].Name, "bootstrap-token-") || len(secret.Data) != 9 {
		t.Fatalf("kubeadm-certs: owners %v, %d files", secret.OwnerReferences, len(secret.Data))
	}
	for i := 1; i < 3; i++ {
		a, _ := os.ReadFile(filepath.Join(cp0, "pki", "ca.key"))
		b, _ := os.ReadFile(filepath.Join(clusterDir, fmt.Sprintf("cp-%d", i), "pki", "ca.key"))
		c, _ := os.ReadFile(filepath.Join(clusterDir, fmt.Sprintf("cp-%d", i), "pki", "apiserver.crt"))
		d, _ := os.ReadFile(filepath.Join(cp0, "pki", "apiserver.crt"))
		if string(a) != string(b) || len(c) == 0 || string(c) == string(d) {
			t.Errorf("replica %d: shares the CA key: %v, has its own apiserver certificate: %v", i, string(a) == string(b), len(c) > 0 && string(c) != string(d))
		}
	}

	// SIGKILL one kube-apiserver while clients send requests through the
	// endpoint the whole time.
	victim := e.ComponentPID("kube-apiserver-0@")
	listNodes := harness.Reads(client)
	load := harness.UnderLoad(listNodes, func() {
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		e.AwaitRestart("kube-apiserver-0@", victim)
	})
	t.Logf("SIGKILL of one kube-apiserver: %d requests ok, %d failed", load.OK, load.Failed)
	if load.Failed > 4 {
		t.Fatalf("%d requests failed; at most the 4 in flight may", load.Failed)
	}

	// SIGTERM drains: /readyz fails first, the load balancer stops sending,
	// in-flight requests finish. No request fails.
	victim = e.ComponentPID("kube-apiserver-1@")
	load = harness.UnderLoad(listNodes, func() {
		if err := syscall.Kill(victim, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		e.AwaitRestart("kube-apiserver-1@", victim)
	})
	t.Logf("SIGTERM of one kube-apiserver: %d requests ok, %d failed", load.OK, load.Failed)
	if load.Failed > 0 {
		t.Fatalf("%d requests failed during a graceful stop", load.Failed)
	}

	// SIGKILL one etcd member under writes: writes go on, the member is
	// restarted and catches up with the others.
	killEtcdMemberUnderWrites(t, e, client, 2, "stacked")
	e.Eventually(60*time.Second, func() error {
		revs := map[int64]bool{}
		for i := range 3 {
			revs[etcdRevision(t, filepath.Join(clusterDir, fmt.Sprintf("cp-%d", i)), i)] = true
		}
		if len(revs) != 1 {
			return fmt.Errorf("etcd members disagree on the revision: %v", revs)
		}
		return nil
	})

	// SIGKILL the engine while an operation runs: the endpoint keeps
	// serving (the load balancer is a process of its own, adopted like the
	// control planes), and the next engine finishes the operation.
	lb := e.ProcessPIDs()["loadbalancer@engine"]
	load = harness.UnderLoad(listNodes, func() {
		e.Gcloud("container", "node-pools", "create", "extra", "--cluster", "ha", "--region", "us-central1", "--num-nodes", "1", "--async")
		e.Kill()
		time.Sleep(2 * time.Second) // the cluster serves with no engine
		e.Restart()
	})
	t.Logf("SIGKILL of the engine: %d requests ok, %d failed", load.OK, load.Failed)
	if load.Failed > 0 {
		t.Fatalf("%d requests failed while the engine was down", load.Failed)
	}
	if now := e.ProcessPIDs()["loadbalancer@engine"]; now != lb {
		t.Fatalf("load balancer pid %d before the engine crash, %d after: not adopted", lb, now)
	}
	op := strings.TrimSpace(e.Gcloud("container", "operations", "list", "--region", "us-central1", "--filter", "operationType=CREATE_NODE_POOL", "--format", "value(name)"))
	e.Gcloud("container", "operations", "wait", op, "--region", "us-central1")
	if n := readyNodes(t, e); len(n) != 6 {
		t.Fatalf("want 6 Ready nodes after the resumed operation, got %v", n)
	}
}

// killEtcdMemberUnderWrites SIGKILLs etcd member i while clients write
// through the endpoint: writes go on (one started after the kill succeeds)
// and the member is restarted. Each client may lose one
// write in flight on the dead member and, when it was the leader, one
// proposal lost with it (etcd fails that after its request timeout, 7 s).
func killEtcdMemberUnderWrites(t *testing.T, e *harness.Engine, client kubernetes.Interface, i int, topology string) {
	t.Helper()
	prefix := fmt.Sprintf("etcd-%d@", i)
	victim := e.ComponentPID(prefix)
	down := make(chan struct{})
	writes, okDuring := harness.Writes(client, down)
	var stall time.Duration
	load := harness.UnderLoad(writes, func() {
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		close(down)
		e.Eventually(30*time.Second, func() error {
			if okDuring.Load() == 0 {
				return fmt.Errorf("no write started since etcd member %d was killed has succeeded", i)
			}
			return nil
		})
		stall = time.Since(killed)
		e.AwaitRestart(prefix, victim)
	})
	t.Logf("SIGKILL of %s etcd member %d: %d writes ok (%d started after the kill, the first done %.1f s after it), %d failed",
		topology, i, load.OK, okDuring.Load(), stall.Seconds(), load.Failed)
	if load.Failed > 2*harness.Clients {
		t.Fatalf("%d writes failed; at most 2 per client may", load.Failed)
	}
}

// etcdLeader returns the index of the etcd member that leads.
func etcdLeader(t *testing.T, clusterDir string) int {
	t.Helper()
	for i := range 3 {
		cli := etcdClientFor(t, filepath.Join(clusterDir, "cp-0"), i)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, cli.Endpoints()[0])
		cancel()
		cli.Close()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no etcd member leads")
	return -1
}

// etcdRevision is the revision etcd member i reports.
func etcdRevision(t *testing.T, cp string, i int) int64 {
	t.Helper()
	cli := etcdClientFor(t, cp, i)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, cli.Endpoints()[0])
	if err != nil {
		return -1
	}
	return st.Header.Revision
}

// etcdMembers lists the members of the cluster's etcd as "name" or
// "name learner".
func etcdMembers(t *testing.T, cp string) []string {
	t.Helper()
	var out []string
	for _, m := range etcdMemberList(t, cp) {
		s := m.Name
		if m.IsLearner {
			s += " learner"
		}
		out = append(out, s)
	}
	return out
}

// etcdMemberList is the cluster's etcd member list, read through member 0
// with host cp's client certificate.
func etcdMemberList(t *testing.T, cp string) []*etcdserverpb.Member {
	t.Helper()
	cli := etcdClientFor(t, cp, 0)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return list.Members
}

// etcdClientFor connects to etcd member i with host cp's
// apiserver-etcd-client certificate.
func etcdClientFor(t *testing.T, cp string, i int) *clientv3.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(cp, "pki", "apiserver-etcd-client.crt"), filepath.Join(cp, "pki", "apiserver-etcd-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(cp, "pki", "etcd", "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdEndpoint(t, cp, i)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// etcdEndpoint reads the client URL of etcd member i from its running
// process.
func etcdEndpoint(t *testing.T, cp string, i int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cp, "..", "run", fmt.Sprintf("etcd-%d.pid", i)))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(data), &pid)
	args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	for _, a := range strings.Split(string(args), "\x00") {
		if v, ok := strings.CutPrefix(a, "--advertise-client-urls="); ok {
			return v
		}
	}
	t.Fatalf("no etcd client URL for %s", cp)
	return ""
}

// TestRegionalExternalEtcd: the external etcd topology, chosen at create
// time with a label and shown by describe: three etcd members on machines
// of their own, every kube-apiserver talking to all three with its
// apiserver-etcd-client certificate, so that writes go on when one member
// dies.
func TestRegionalExternalEtcd(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "ha2", "--region", "us-central1", "--num-nodes", "1", "--labels", "kubeyard-etcd-topology=external")
	e.Gcloud("container", "clusters", "get-credentials", "ha2", "--region", "us-central1")
	if labels := e.Gcloud("container", "clusters", "describe", "ha2", "--region", "us-central1", "--format", "value(resourceLabels)"); !strings.Contains(labels, "kubeyard-etcd-topology=external") {
		t.Fatalf("describe does not show the topology: %s", labels)
	}
	if nodes := readyNodes(t, e); len(nodes) != 3 {
		t.Fatalf("want 3 Ready nodes, got %v", nodes)
	}
	// The topology cannot change afterwards.
	if out, err := e.Run("gcloud", "container", "clusters", "update", "ha2", "--region", "us-central1", "--update-labels", "kubeyard-etcd-topology=stacked"); err == nil || !strings.Contains(out, "kubeyard-etcd-topology") {
		t.Fatalf("a topology change was accepted: %v\n%s", err, out)
	}

	cluster := e.ClusterDir()
	var etcdURLs []string
	for i := range 3 {
		etcdURLs = append(etcdURLs, etcdEndpoint(t, filepath.Join(cluster, fmt.Sprintf("etcd-%d", i)), i))
		// A control-plane replica holds no etcd member of its own.
		if _, err := os.Stat(filepath.Join(cluster, fmt.Sprintf("cp-%d", i), "etcd")); err == nil {
			t.Errorf("cp-%d has etcd data", i)
		}
		if _, err := os.Stat(filepath.Join(cluster, fmt.Sprintf("cp-%d", i), "pki", "etcd", "server.crt")); err == nil {
			t.Errorf("cp-%d has an etcd server certificate", i)
		}
	}
	for i := range 3 {
		args := processArgs(t, e.ComponentPID(fmt.Sprintf("kube-apiserver-%d@", i)))
		if want := "--etcd-servers=" + strings.Join(etcdURLs, ","); !slices.Contains(args, want) {
			t.Errorf("kube-apiserver-%d does not talk to every member (want %s): %v", i, want, args)
		}
	}
	members := etcdMembers(t, filepath.Join(cluster, "cp-0"))
	slices.Sort(members)
	if want := []string{"ha2-etcd-0", "ha2-etcd-1", "ha2-etcd-2"}; !slices.Equal(members, want) {
		t.Fatalf("etcd members %v, want %v", members, want)
	}

	// SIGKILL one member under writes through the endpoint.
	client := e.AdminClient(cluster)
	// The leader, the worst case: proposals in flight to it are lost.
	killEtcdMemberUnderWrites(t, e, client, etcdLeader(t, cluster), "external")
}

// processArgs returns the command line of a running process.
func processArgs(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// TestRegionalControlPlaneRecreation: an "upgrade" of the control plane to
// the version it runs recreates the replicas one at a time, the kubeadm way
// (member removed, machine wiped, joined again with new certificates and a
// new etcd member), while clients go on; and it is refused with
// FAILED_PRECONDITION, changing nothing, while an etcd member is down:
// replacing a second member would lose quorum.
func TestRegionalControlPlaneRecreation(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "ha", "--region", "us-central1", "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")
	clusterDir := e.ClusterDir()
	upgrade := []string{"container", "clusters", "upgrade", "ha", "--master", "--cluster-version", "1.37.2-kubeyard.0", "--region", "us-central1", "--quiet"}

	memberIDs := func() map[uint64]string {
		out := map[uint64]string{}
		for _, m := range etcdMemberList(t, filepath.Join(clusterDir, "cp-0")) {
			out[m.ID] = m.Name
		}
		return out
	}
	before := memberIDs()

	// A member that does not answer (stopped, not dead: the supervisor
	// does not restart it) makes a recreation unsafe.
	stopped := e.ComponentPID("etcd-2@")
	if err := syscall.Kill(stopped, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(stopped, syscall.SIGCONT) })
	out, err := e.Run("gcloud", upgrade...)
	if err == nil || !strings.Contains(out, "code=400") || !strings.Contains(out, "would lose quorum") || !strings.Contains(out, "etcd-2") {
		t.Fatalf("recreation with a member down: %v\n%s", err, out)
	}
	if ops := e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_MASTER", "--format", "value(name)"); strings.TrimSpace(ops) != "" {
		t.Fatalf("a refused recreation started an operation: %s", ops)
	}
	if err := syscall.Kill(stopped, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if after := memberIDs(); !maps.Equal(after, before) {
		t.Fatalf("a refused recreation changed the etcd members: %v -> %v", before, after)
	}

	// With every replica healthy it runs, under load.
	oldCert, _ := os.ReadFile(filepath.Join(clusterDir, "cp-0", "pki", "apiserver.crt"))
	client := e.AdminClient(clusterDir)
	var took time.Duration
	load := harness.UnderLoad(harness.Reads(client), func() {
		begin := time.Now()
		// The stopped member may take a moment to be healthy again.
		e.Eventually(30*time.Second, func() error {
			_, err := e.Run("gcloud", upgrade...)
			return err
		})
		took = time.Since(begin)
	})
	t.Logf("control plane recreated (3 replicas) in %.1f s: %d requests ok, %d failed", took.Seconds(), load.OK, load.Failed)
	after := memberIDs()
	if len(after) != 3 {
		t.Fatalf("etcd members after recreation: %v", after)
	}
	for id := range after {
		if _, ok := before[id]; ok {
			t.Errorf("etcd member %x (%s) was not replaced", id, after[id])
		}
	}
	if newCert, _ := os.ReadFile(filepath.Join(clusterDir, "cp-0", "pki", "apiserver.crt")); string(newCert) == string(oldCert) || len(newCert) == 0 {
		t.Error("replica 0 kept its apiserver certificate")
	}
	if st := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "ha", "--region", "us-central1", "--format", "value(status)")); st != "RUNNING" {
		t.Fatalf("cluster after recreation: %s", st)
	}
	if nodes := readyNodes(t, e); len(nodes) != 3 {
		t.Fatalf("want 3 Ready nodes after recreation, got %v", nodes)
	}
	if load.Failed > 0 {
		t.Fatalf("%d requests failed while the replicas were recreated one at a time", load.Failed)
	}
}
