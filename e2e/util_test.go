package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// startEtcd runs an etcd of its own (the binary's upstream etcd) on
// loopback until the test ends, and returns its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	client, peer := "http://"+harness.FreeAddr(t), "http://"+harness.FreeAddr(t)
	etcd := exec.Command(harness.Binary(t), "component", "etcd", "--name=ext", "--data-dir="+filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=ext="+peer)
	etcd.Stdout, etcd.Stderr = os.Stderr, os.Stderr
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Process.Kill(); etcd.Wait() })
	return client
}
