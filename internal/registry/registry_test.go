package registry_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/registry"
)

// crane's library pushes an image into the store through the API and
// pulls it back; the store names it as pods do; strangers get 401.
func TestPushAndPull(t *testing.T) {
	dir := t.TempDir()
	store, err := images.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	var pushed []string
	srv := httptest.NewServer(&registry.Handler{Store: store, Token: "ky.secret", UploadDir: filepath.Join(dir, "uploads"),
		Pushed: func(img images.Image) { pushed = append(pushed, img.Name) }})
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	auth := crane.WithAuth(&authn.Basic{Username: "kubeyard", Password: "ky.secret"})

	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	for _, ref := range []string{host + "/library/app:1.0", host + "/us-docker.pkg.dev/team/app:2.0"} {
		if err := crane.Push(img, ref, auth, crane.Insecure); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	// The engine is told, to unpack them for containers.
	if want := []string{"docker.io/library/app:1.0", "us-docker.pkg.dev/team/app:2.0"}; !slices.Equal(pushed, want) {
		t.Errorf("pushed %v, want %v", pushed, want)
	}
	for _, name := range []string{"app:1.0", "us-docker.pkg.dev/team/app:2.0"} {
		if _, got, err := store.Resolve(name); err != nil || got.Digest != want.String() {
			t.Errorf("%s in the store: %+v %v", name, got, err)
		}
	}
	pulled, err := crane.Pull(host+"/library/app:1.0", auth, crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pulled.Digest(); got != want {
		t.Errorf("pulled %s, pushed %s", got, want)
	}
	if layers, err := pulled.Layers(); err != nil || len(layers) != 3 {
		t.Errorf("pulled layers: %d %v", len(layers), err)
	}
	if tags, err := crane.ListTags(host+"/us-docker.pkg.dev/team/app", auth, crane.Insecure); err != nil || len(tags) != 1 || tags[0] != "2.0" {
		t.Errorf("tags: %v %v", tags, err)
	}
	if _, err := crane.Pull(host+"/library/app:1.0", crane.Insecure, crane.WithAuth(&authn.Basic{Username: "x", Password: "wrong"})); err == nil {
		t.Error("pulled with a wrong password")
	}
	resp, err := http.Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("anonymous /v2/: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
