package images_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/images/builtin"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                       "docker.io/library/busybox:latest",
		"busybox:1.36":                  "docker.io/library/busybox:1.36",
		"library/busybox":               "docker.io/library/busybox:latest",
		"docker.io/library/busybox":     "docker.io/library/busybox:latest",
		"index.docker.io/library/nginx": "docker.io/library/nginx:latest",
		"me/app:v2":                     "docker.io/me/app:v2",
		"us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0": "us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0",
		"localhost:5000/app":      "localhost:5000/app:latest",
		"busybox@sha256:" + zeros: "docker.io/library/busybox@sha256:" + zeros,
	} {
		if got, err := images.Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := images.Normalize("Bad Name"); err == nil {
		t.Error("a bad reference was normalized")
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

// builtinFiles builds what `make build` puts beside the builtin package:
// the hello-app server at both versions, netd, CoreDNS and Debian's
// busybox.
func builtinFiles(t *testing.T) fs.FS {
	t.Helper()
	dir := t.TempDir()
	for _, v := range []string{"1.0", "2.0"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "hello-app-"+v), "-ldflags", "-X main.version="+v+".0", "github.com/kubeyard/kubeyard/images/hello-app")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build hello-app: %v\n%s", err, out)
		}
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "netd"), "github.com/kubeyard/kubeyard/images/netd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build netd: %v\n%s", err, out)
	}
	// CoreDNS is a module of its own (images/coredns).
	cmd = exec.Command("go", "build", "-C", "../../images/coredns", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "coredns"), ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build coredns: %v\n%s", err, out)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("Debian's busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	applets, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"busybox": bb, "applets": applets} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return os.DirFS(dir)
}

// The store keeps named images: added, listed, found by name, short name
// or digest, removed with the blobs only they used.
func TestStore(t *testing.T) {
	built, err := builtin.Images(builtinFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := builtin.Images(builtinFiles(t))
	d1, _ := built[builtin.HelloApp1].Digest()
	d2, _ := again[builtin.HelloApp1].Digest()
	if d1 != d2 {
		t.Errorf("two builds of hello-app:1.0 have digests %s and %s", d1, d2)
	}
	s, err := images.Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	for ref, img := range built {
		if _, err := s.Add(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List()
	if err != nil || len(list) != 5 || list[0].Name != builtin.Busybox || list[0].Size < 1<<20 {
		t.Fatalf("list: %+v %v", list, err)
	}
	_, found, err := s.Resolve("busybox")
	if err != nil || found.Name != builtin.Busybox {
		t.Fatalf("busybox: %+v %v", found, err)
	}
	if _, byDigest, err := s.Resolve("us-docker.pkg.dev/google-samples/containers/gke/hello-app@" + d1.String()); err != nil || byDigest.Digest != d1.String() {
		t.Errorf("by digest: %+v %v", byDigest, err)
	}
	if _, _, err := s.Resolve("nginx"); !errors.Is(err, images.ErrNotFound) {
		t.Errorf("nginx: %v", err)
	}
	blobs := func() int {
		entries, _ := os.ReadDir(filepath.Join(s.Dir(), "blobs", "sha256"))
		return len(entries)
	}
	before := blobs()
	if err := s.Remove(builtin.HelloApp2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Resolve(builtin.HelloApp2); !errors.Is(err, images.ErrNotFound) {
		t.Errorf("removed: %v", err)
	}
	if after := blobs(); after != before-3 { // its manifest, config and layer
		t.Errorf("blobs: %d before, %d after removing hello-app:2.0", before, after)
	}
	if err := s.Remove("nginx"); !errors.Is(err, images.ErrNotFound) {
		t.Errorf("removing what is not there: %v", err)
	}
}

// Load takes `docker save` archives and OCI layouts in a tar, by their
// names; an archive that names nothing is refused.
func TestLoad(t *testing.T) {
	img, err := images.Build(map[string]images.File{"hello.txt": {Data: []byte("hi"), Mode: 0o644}}, v1.Config{Cmd: []string{"/bin/true"}}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	s, err := images.Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	var docker bytes.Buffer
	tag, _ := name.NewTag("example.com/team/app:v1")
	if err := tarball.Write(tag, img, &docker); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(&docker)
	if err != nil || len(got) != 1 || got[0].Name != "example.com/team/app:v1" {
		t.Fatalf("docker save: %+v %v", got, err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "app:v2"})); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load(tarDir(t, dir))
	if err != nil || len(got) != 1 || got[0].Name != "docker.io/library/app:v2" {
		t.Fatalf("OCI layout: %+v %v", got, err)
	}
	unnamed := filepath.Join(t.TempDir(), "unnamed")
	p, _ = layout.Write(unnamed, empty.Index)
	_ = p.AppendImage(img)
	if _, err := s.Load(tarDir(t, unnamed)); err == nil || !strings.Contains(err.Error(), "names no image") {
		t.Errorf("an archive without names: %v", err)
	}
	if _, err := s.Load(strings.NewReader("not a tar")); err == nil {
		t.Error("garbage was loaded")
	}
}

func tarDir(t *testing.T, dir string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return &buf
}

// Unpack writes the flattened file system; a symlink pointing out of the
// root file system cannot make it write outside.
func TestUnpack(t *testing.T) {
	img, err := images.Build(map[string]images.File{
		"bin/tool": {Data: []byte("#!/bin/sh\n"), Mode: 0o4755},
		"bin/sh":   {Link: "tool"},
	}, v1.Config{}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := images.Unpack(img, root); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, "bin", "tool")); err != nil || fi.Mode().Perm() != 0o755 || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("bin/tool: %v %v", fi, err)
	}
	if link, _ := os.Readlink(filepath.Join(root, "bin", "sh")); link != "tool" {
		t.Errorf("bin/sh -> %q", link)
	}

	// A layer whose symlink points outside, then a file through it.
	outside := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "escape", Linkname: outside, Mode: 0o777})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "escape/pwnd", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "up", Linkname: "../../../../../../..", Mode: 0o777})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "up" + outside + "/pwnd2", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "passwd", Linkname: "../../../../../../../etc/passwd"})
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	bad, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	badRoot := t.TempDir()
	_ = images.Unpack(bad, badRoot) // refused or left out: either way, inside
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("unpacking wrote outside the root file system: %v", entries)
	}
	if _, err := os.Lstat(filepath.Join(badRoot, "passwd")); err == nil {
		t.Error("a hard link to a file out of the root was made")
	}
}
