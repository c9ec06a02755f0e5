package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"
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

// TestCommandsFindTheirEngine: after the environment `kubeyard env`
// prints, commands reach the engine it names, with its token and project,
// without --addr, --data-dir or --project; a flag still wins.
func TestCommandsFindTheirEngine(t *testing.T) {
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "access-token"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"status":"UNAUTHENTICATED","message":"no"}}`)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/joinCommand"):
			fmt.Fprint(w, `{"endpoint":"127.10.0.2","token":"abcdef.0123456789abcdef","caCertHash":"sha256:00"}`)
		case strings.HasSuffix(r.URL.Path, "/clusters"):
			fmt.Fprint(w, `{"clusters":[{"name":"demo","location":"us-central1-a"}]}`)
		case strings.HasSuffix(r.URL.Path, "/rotateClusterCA"):
			fmt.Fprint(w, `{"name":"operation-1"}`)
		case strings.Contains(r.URL.Path, "/operations/"):
			fmt.Fprint(w, `{"name":"operation-1","status":"DONE"}`)
		default:
			fmt.Fprint(w, `{}`)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	env, err := run(t, "env", "--data-dir", dataDir, "--addr", addr, "--project", "p1")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBEYARD_DATA_DIR", "")
	t.Setenv("KUBEYARD_ADDR", "")
	for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
		kv := strings.TrimPrefix(line, "export ")
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, strings.Trim(v, "'"))
	}
	for _, c := range []struct {
		args []string
		want string // a request the engine must see
	}{
		{[]string{"clock", "show"}, "GET /kubeyard/v1/clock"},
		{[]string{"clusters", "join-command", "demo", "--location", "us-central1-a"}, "POST /kubeyard/v1/projects/p1/locations/us-central1-a/clusters/demo/joinCommand"},
		{[]string{"clusters", "upload-certs", "demo", "--location", "us-central1-a"}, "POST /kubeyard/v1/projects/p1/locations/us-central1-a/clusters/demo/uploadCerts"},
		{[]string{"update", "credentials", "--cluster-ca", "--cluster-name", "demo", "--workspace", t.TempDir()}, "GET /v1/projects/p1/locations/-/clusters"},
		{[]string{"clusters", "upload-certs", "demo", "--location", "us-central1-a", "--project", "p2"}, "POST /kubeyard/v1/projects/p2/locations/us-central1-a/clusters/demo/uploadCerts"},
	} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		out, _ := run(t, c.args...)
		mu.Lock()
		got := slices.Contains(seen, c.want)
		mu.Unlock()
		if !got {
			t.Errorf("kubeyard %s: the engine saw %v, not %q\n%s", strings.Join(c.args, " "), seen, c.want, out)
		}
	}
	// A wrong data dir says what to do.
	if out, err := run(t, "clock", "show", "--data-dir", t.TempDir()); err == nil || !strings.Contains(out+err.Error(), "kubeyard env") {
		t.Errorf("a data dir without a token: %v %s", err, out)
	}
}

// TestHelpShowsOnlyKubeyardFlags: flags that linked upstream packages
// register globally (component-base's --version) are not kubeyard's.
func TestHelpShowsOnlyKubeyardFlags(t *testing.T) {
	pflag.CommandLine.String("version", "", "--version, --version=raw prints version information and quits")
	for _, args := range [][]string{{"--help"}, {"clock", "--help"}} {
		out, err := run(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "--version") {
			t.Errorf("kubeyard %s shows an upstream flag:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestDebugAddrServesProfilesOnLoopbackOnly: --debug-addr serves the
// engine's profiles, and only on a loopback address.
func TestDebugAddrServesProfilesOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "localhost:0", "10.1.2.3:6060"} {
		if stop, err := serveDebug(addr); err == nil {
			stop()
			t.Errorf("--debug-addr %s was taken", addr)
		} else if !strings.Contains(err.Error(), "--debug-addr") {
			t.Errorf("--debug-addr %s: the error does not name the flag: %v", addr, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := serveDebug(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("GET /debug/pprof/goroutine: HTTP %d\n%.300s", resp.StatusCode, body)
	}
}
