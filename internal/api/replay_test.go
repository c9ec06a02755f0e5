package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kubeyard/kubeyard/internal/apitest"
	"github.com/kubeyard/kubeyard/internal/auth"
	"github.com/kubeyard/kubeyard/internal/console"
	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/engine/fakeruntime"
	"github.com/kubeyard/kubeyard/internal/store"
)

// testEngine serves the engine's API over a fake runtime and an embedded
// etcd, until the test ends.
type testEngine struct {
	*apitest.Client
	srv     *httptest.Server
	console *console.Console
}

func newTestEngine(t *testing.T) *testEngine {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux := http.NewServeMux()
	te := &testEngine{srv: httptest.NewServer(mux)}
	t.Cleanup(te.srv.Close)
	te.Client = &apitest.Client{T: t, Base: te.srv.URL, Token: "test-token"}
	e, err := engine.New(context.Background(), engine.Config{DataDir: t.TempDir(), BaseURL: te.srv.URL, Store: st, Runtime: fakeruntime.New(),
		Identity: auth.Identity{Token: te.Token, User: auth.DefaultUser}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(false) })
	te.console = console.New(e.Identity())
	mux.Handle("/", NewHandler(e, te.console))
	return te
}

// TestTerraformRequestsAreAccepted: what Terraform's Google provider sends
// for a network, a subnetwork, a firewall rule, a cluster and a node pool
// is accepted, and what it reads back is there.
func TestTerraformRequestsAreAccepted(t *testing.T) { newTestEngine(t).TerraformCluster() }

// TestTerraformPrivateClusterRequestsAreAccepted: the same for the private
// cluster configuration and its updates.
func TestTerraformPrivateClusterRequestsAreAccepted(t *testing.T) {
	newTestEngine(t).TerraformPrivateCluster()
}
