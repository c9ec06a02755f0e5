package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// gcloudJSON runs gcloud with --format=json and decodes what it prints
// into v.
func gcloudJSON(t *testing.T, e *harness.Engine, v any, args ...string) {
	t.Helper()
	out := e.Gcloud(append(args, "--format=json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("gcloud %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
