package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/images"
)

// TestImages: the engine carries busybox and the two hello-app images of
// seeds/003; `kubeyard images load` takes a docker save archive, `rm`
// removes it, and a name the store does not have is NOT_FOUND; images are
// pushed and pulled through the OCI distribution API.
func TestImages(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	list := func() string {
		t.Helper()
		out, err := e.Kubeyard("images", "list")
		if err != nil {
			t.Fatalf("images list: %v\n%s", err, out)
		}
		return out
	}
	for _, want := range []string{"docker.io/library/busybox:latest", "us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0", "us-docker.pkg.dev/google-samples/containers/gke/hello-app:2.0", "gke.gcr.io/netd:kubeyard"} {
		if out := list(); !strings.Contains(out, want+" ") {
			t.Errorf("the built-in %s is not listed:\n%s", want, out)
		}
	}
	img, err := images.Build(map[string]images.File{"app/hello.txt": {Data: []byte("hi"), Mode: 0o644}}, v1.Config{Cmd: []string{"/bin/sh"}}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "app.tar")
	tag, _ := name.NewTag("example.com/team/app:v1")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	if out, err := e.Kubeyard("images", "load", archive); err != nil || !strings.Contains(out, "example.com/team/app:v1") {
		t.Fatalf("images load: %v\n%s", err, out)
	}
	if out := list(); !strings.Contains(out, "example.com/team/app:v1") {
		t.Errorf("the loaded image is not listed:\n%s", out)
	}
	if out, err := e.Kubeyard("images", "rm", "example.com/team/app:v1"); err != nil {
		t.Fatalf("images rm: %v\n%s", err, out)
	}
	if out := list(); strings.Contains(out, "example.com/team/app") {
		t.Errorf("a removed image is listed:\n%s", out)
	}
	if out, err := e.Kubeyard("images", "rm", "nginx"); err == nil || !strings.Contains(out, "NOT_FOUND") {
		t.Errorf("removing an image that is not there: %v\n%s", err, out)
	}
	// The OCI distribution API at the engine's address, the token as the
	// password, as crane (here its library) and skopeo use it.
	auth := crane.WithAuth(&authn.Basic{Username: "kubeyard", Password: e.Token()})
	if err := crane.Push(img, e.Addr+"/team/app:v2", auth, crane.Insecure); err != nil {
		t.Fatalf("push to the engine: %v", err)
	}
	if out := list(); !strings.Contains(out, "docker.io/team/app:v2") {
		t.Errorf("the pushed image is not listed:\n%s", out)
	}
	hello, err := crane.Pull(e.Addr+"/us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0", auth, crane.Insecure)
	if err != nil {
		t.Fatalf("pull from the engine: %v", err)
	}
	if cfg, err := hello.ConfigFile(); err != nil || !slices.Contains(cfg.Config.Env, "PORT=8080") {
		t.Errorf("the pulled hello-app's config: %+v %v", cfg, err)
	}
	if _, err := crane.Pull(e.Addr+"/team/app:v2", crane.Insecure); err == nil {
		t.Error("pulled with no credentials")
	}
	garbage := filepath.Join(t.TempDir(), "garbage.tar")
	os.WriteFile(garbage, []byte("not an archive"), 0o644)
	if out, err := e.Kubeyard("images", "load", garbage); err == nil || !strings.Contains(out, "INVALID_ARGUMENT") {
		t.Errorf("loading garbage: %v\n%s", err, out)
	}
}
