package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/etcdclient"
	"github.com/kubeyard/kubeyard/internal/pki"
	"github.com/kubeyard/kubeyard/internal/sharedetcd"
)

// TestSharedEtcd: zonal clusters created with the shared etcd topology keep
// their state in one etcd, each under its own prefix and as its own etcd
// user. One cluster's etcd credentials read and write its own keys and
// nothing of another's; deleting a cluster removes its keys and its user;
// the shared etcd survives an engine restart; a regional cluster cannot use
// it, and a shared cluster takes no control-plane replica.
func TestSharedEtcd(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	shared := []string{"--num-nodes", "1", "--labels", "kubeyard-etcd-topology=shared"}
	e.Gcloud(append([]string{"container", "clusters", "create", "tenant-a", "--zone", zone}, shared...)...)
	e.Gcloud(append([]string{"container", "clusters", "create", "tenant-b", "--zone", zone}, shared...)...)
	if labels := e.Gcloud("container", "clusters", "describe", "tenant-a", "--zone", zone, "--format", "value(resourceLabels)"); !strings.Contains(labels, "kubeyard-etcd-topology=shared") {
		t.Fatalf("describe does not show the topology: %s", labels)
	}
	idA := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "tenant-a", "--zone", zone, "--format", "value(id)"))
	idB := strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "tenant-b", "--zone", zone, "--format", "value(id)"))

	// One etcd for both: neither cluster runs one of its own.
	for name := range e.ProcessPIDs() {
		if strings.HasPrefix(name, "etcd-") {
			t.Errorf("a shared-topology cluster runs an etcd of its own: %s", name)
		}
	}
	if _, ok := e.ProcessPIDs()["shared-etcd@engine"]; !ok {
		t.Fatalf("no shared etcd among the engine's processes: %v", e.ProcessPIDs())
	}

	e.Gcloud("container", "clusters", "get-credentials", "tenant-a", "--zone", zone)
	e.Kubectl("create", "configmap", "secret-of-a", "--from-literal=k=only-for-a")
	e.Gcloud("container", "clusters", "get-credentials", "tenant-b", "--zone", zone)
	e.Kubectl("create", "configmap", "secret-of-b", "--from-literal=k=only-for-b")
	if out, err := e.Run("kubectl", "get", "configmap", "secret-of-a"); err == nil {
		t.Fatalf("cluster b sees cluster a's configmap:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := tenantClient(t, e, idA)
	key := func(id, name string) string { return sharedetcd.Prefix(id) + "registry/configmaps/default/" + name }
	if resp, err := a.Get(ctx, key(idA, "secret-of-a")); err != nil || resp.Count != 1 || !strings.Contains(string(resp.Kvs[0].Value), "only-for-a") {
		t.Fatalf("cluster a's credentials do not read its own configmap: %v %v", resp, err)
	}
	denied := map[string]func() error{
		"read b's key":       func() error { _, err := a.Get(ctx, key(idB, "secret-of-b")); return err },
		"list b's prefix":    func() error { _, err := a.Get(ctx, sharedetcd.Prefix(idB), clientv3.WithPrefix()); return err },
		"list every cluster": func() error { _, err := a.Get(ctx, "/clusters/", clientv3.WithPrefix()); return err },
		"write into b":       func() error { _, err := a.Put(ctx, key(idB, "planted"), "x"); return err },
		"delete b's key":     func() error { _, err := a.Delete(ctx, key(idB, "secret-of-b")); return err },
		"compact":            func() error { _, err := a.Compact(ctx, 1); return err },
		"list users":         func() error { _, err := a.UserList(ctx); return err },
	}
	for what, try := range denied {
		if err := try(); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("cluster a's etcd credentials: %s: want permission denied, got %v", what, err)
		}
	}
	if out := e.Kubectl("get", "configmap", "secret-of-b", "-o", "jsonpath={.data.k}"); out != "only-for-b" {
		t.Fatalf("cluster b's configmap changed: %q", out)
	}

	// A regional cluster keeps etcd members of its own.
	out, err := e.Run("gcloud", "container", "clusters", "create", "regional", "--region", "us-central1", "--num-nodes", "1", "--labels", "kubeyard-etcd-topology=shared")
	if err == nil || !strings.Contains(out, "kubeyard-etcd-topology") || !strings.Contains(out, "zonal clusters only") {
		t.Fatalf("a regional cluster on the shared etcd: %v\n%s", err, out)
	}
	if out, err := e.Kubeyard("clusters", "join-command", "tenant-a", "--control-plane", "--data-dir", e.DataDir, "--addr", e.Addr, "--project", e.Project, "--location", zone); err == nil || !strings.Contains(out, "shared etcd") {
		t.Fatalf("a control-plane join of a shared cluster: %v\n%s", err, out)
	}

	// The shared etcd outlives an engine restart; the clusters answer.
	if err := e.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e.Restart()
	if out := e.Kubectl("get", "configmap", "secret-of-b", "-o", "jsonpath={.data.k}"); out != "only-for-b" {
		t.Fatalf("after a restart, cluster b's configmap: %q", out)
	}

	// Deleting b removes its keys and its etcd user; a keeps running.
	e.Gcloud("container", "clusters", "delete", "tenant-b", "--zone", zone, "--quiet")
	root := rootClient(t, e)
	if resp, err := root.Get(ctx, sharedetcd.Prefix(idB), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("cluster b's keys after its delete: %v %v", resp, err)
	}
	if _, err := root.UserGet(ctx, sharedetcd.User(idB)); !errors.Is(err, rpctypes.ErrUserNotFound) {
		t.Fatalf("cluster b's etcd user after its delete: %v", err)
	}
	if _, err := root.UserGet(ctx, sharedetcd.User(idA)); err != nil {
		t.Fatalf("cluster a's etcd user: %v", err)
	}
	e.Gcloud("container", "clusters", "get-credentials", "tenant-a", "--zone", zone)
	if out := e.Kubectl("get", "configmap", "secret-of-a", "-o", "jsonpath={.data.k}"); out != "only-for-a" {
		t.Fatalf("cluster a after b's delete: %q", out)
	}
}

// tenantClient is an etcd client with the credentials cluster id's
// kube-apiserver uses on the shared etcd.
func tenantClient(t *testing.T, e *harness.Engine, id string) *clientv3.Client {
	t.Helper()
	dir := filepath.Join(e.DataDir, "clusters", id, "cp-0", "pki")
	return sharedEtcdClient(t, e, filepath.Join(dir, "apiserver-etcd-client"), filepath.Join(dir, "etcd/ca.crt"))
}

// rootClient is an etcd client with the engine's root credentials.
func rootClient(t *testing.T, e *harness.Engine) *clientv3.Client {
	t.Helper()
	dir := filepath.Join(e.DataDir, "shared-etcd", "pki")
	return sharedEtcdClient(t, e, filepath.Join(dir, "root"), filepath.Join(dir, "ca.crt"))
}

// sharedEtcdClient reaches the shared etcd, at the address its serving
// certificate names, with the certificate base.crt and key base.key.
func sharedEtcdClient(t *testing.T, e *harness.Engine, base, caFile string) *clientv3.Client {
	t.Helper()
	server, err := pki.Load(filepath.Join(e.DataDir, "shared-etcd", "pki"), "server")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcdclient.New([]string{sharedetcd.ClientURL(server.Cert.IPAddresses[0])}, base+".crt", base+".key", caFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
