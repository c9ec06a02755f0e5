// Package builtin is the images kubeyard carries: busybox, and the
// hello-app images of seeds/003 (us-docker.pkg.dev/google-samples/
// containers/gke/hello-app:1.0 and :2.0), built by the project from its
// own source: the hello-app server (images/hello-app) on busybox, which
// gives them a shell, wget and tar as the originals have. And netd
// (images/netd), which the netd DaemonSet of a cluster with intra-node
// visibility runs, and CoreDNS (images/coredns), which serves every
// cluster's DNS.
//
// `make build` compiles the server and takes Debian's static busybox
// (package busybox-static) into this folder, and builds kubeyard with the
// tag builtin_images, which embeds them; a kubeyard built without it has
// no images of its own.
package builtin

import (
	"fmt"
	"io/fs"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/netd"
)

// Names of the images, as pods name them.
const (
	Busybox   = "docker.io/library/busybox:latest"
	HelloApp1 = "us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0"
	HelloApp2 = "us-docker.pkg.dev/google-samples/containers/gke/hello-app:2.0"
	Netd      = netd.Image
	// CoreDNS is the upstream CoreDNS (images/coredns), kube-dns's server.
	CoreDNS    = "registry.k8s.io/coredns/coredns:v1.15.0"
	searchPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// created is when the images say they were made: fixed, so that a build
// gives the same digests.
var created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Images builds the images from the files in fsys: busybox, its applet
// list (applets: what `busybox --list` prints), hello-app-1.0 and
// hello-app-2.0, the server built at those versions, netd, and coredns.
func Images(fsys fs.FS) (map[string]v1.Image, error) {
	read := func(name string) ([]byte, error) {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("builtin images: %w", err)
		}
		return data, nil
	}
	bb, err := read("busybox")
	if err != nil {
		return nil, err
	}
	applets, err := read("applets")
	if err != nil {
		return nil, err
	}
	base := func() map[string]images.File {
		files := map[string]images.File{
			"bin/busybox": {Data: bb, Mode: 0o755},
			"etc/passwd":  {Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"), Mode: 0o644},
			"etc/group":   {Data: []byte("root:x:0:\nnobody:x:65534:\n"), Mode: 0o644},
		}
		for _, a := range strings.Fields(string(applets)) {
			if a != "busybox" {
				files["bin/"+a] = images.File{Link: "busybox"}
			}
		}
		return files
	}
	out := map[string]v1.Image{}
	if out[Busybox], err = images.Build(base(), v1.Config{Cmd: []string{"sh"}, Env: []string{searchPath}}, created); err != nil {
		return nil, err
	}
	for name, file := range map[string]string{HelloApp1: "hello-app-1.0", HelloApp2: "hello-app-2.0"} {
		server, err := read(file)
		if err != nil {
			return nil, err
		}
		files := base()
		files["hello-app"] = images.File{Data: server, Mode: 0o755}
		cfg := v1.Config{Cmd: []string{"/hello-app"}, Env: []string{searchPath, "PORT=8080"}, ExposedPorts: map[string]struct{}{"8080/tcp": {}}}
		if out[name], err = images.Build(files, cfg, created); err != nil {
			return nil, err
		}
	}
	program, err := read("netd")
	if err != nil {
		return nil, err
	}
	netdFiles := map[string]images.File{"netd": {Data: program, Mode: 0o755}}
	if out[Netd], err = images.Build(netdFiles, v1.Config{Cmd: []string{"/netd"}}, created); err != nil {
		return nil, err
	}
	coredns, err := read("coredns")
	if err != nil {
		return nil, err
	}
	dnsFiles := map[string]images.File{"coredns": {Data: coredns, Mode: 0o755}}
	cfg := v1.Config{Entrypoint: []string{"/coredns"}, ExposedPorts: map[string]struct{}{"53/tcp": {}, "53/udp": {}, "9153/tcp": {}}}
	if out[CoreDNS], err = images.Build(dnsFiles, cfg, created); err != nil {
		return nil, err
	}
	return out, nil
}
