package app

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := Run(context.Background(), Streams{Out: &out, Err: &errOut}, args)
	return out.String() + errOut.String(), err
}

func TestEnvPointsGcloudAtTheEngine(t *testing.T) {
	out, err := run(t, "env", "--data-dir", "/tmp/ky data", "--addr", "127.0.0.1:9999", "--project", "p1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"export CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER=http://127.0.0.1:9999/\n",
		"export CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE=http://127.0.0.1:9999/compute/v1/\n",
		"export CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE=http://127.0.0.1:9999/\n",
		"export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE='/tmp/ky data/access-token'\n",
		"export CLOUDSDK_CORE_PROJECT=p1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("env output lacks %q:\n%s", want, out)
		}
	}
}

func TestUnknownCommandFails(t *testing.T) {
	if _, err := run(t, "frobnicate"); err == nil {
		t.Fatal("an unknown command succeeded")
	}
}

// TestOnlyTheDispatcherLinksUpstreamCommands keeps builds fast: only
// internal/components imports k8s.io/kubernetes/cmd/..., and no other
// package's test binary links it.
func TestOnlyTheDispatcherLinksUpstreamCommands(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/kubeyard/kubeyard/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if strings.Contains(imports, "k8s.io/kubernetes/cmd/") && pkg != "github.com/kubeyard/kubeyard/internal/components" {
			t.Errorf("%s imports k8s.io/kubernetes/cmd/...", pkg)
		}
	}
	for _, pkg := range []string{"github.com/kubeyard/kubeyard/internal/app", "github.com/kubeyard/kubeyard/internal/engine", "github.com/kubeyard/kubeyard/e2e"} {
		deps, err := exec.Command("go", "list", "-deps", "-test", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, deps)
		}
		if strings.Contains(string(deps), "k8s.io/kubernetes/cmd/") {
			t.Errorf("the test binary of %s links upstream commands", pkg)
		}
	}
}
