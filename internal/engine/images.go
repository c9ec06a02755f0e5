package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"runtime/debug"

	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/images/builtin"
	"github.com/kubeyard/kubeyard/internal/registry"
	"github.com/kubeyard/kubeyard/internal/status"
)

// seedImages puts the images kubeyard carries into the store, where a name
// is missing: an image a user loaded under one of those names stays.
func (e *Engine) seedImages() error {
	files := builtin.Files()
	if files == nil {
		e.cfg.Logger.Warn("this kubeyard carries no images (built without the builtin_images tag; make build sets it): load them with kubeyard images load")
		return nil
	}
	have, err := e.images.List()
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, img := range have {
		present[img.Name] = true
	}
	if present[builtin.Busybox] && present[builtin.HelloApp1] && present[builtin.HelloApp2] {
		return nil // every start but the first
	}
	if err := e.addImages(files, present); err != nil {
		return err
	}
	// The layers were made in memory, some 130 MiB that the Go runtime
	// would hand back to the machine over ten minutes: now, rather.
	debug.FreeOSMemory()
	return nil
}

// addImages builds the built-in images and stores those not present.
func (e *Engine) addImages(files fs.FS, present map[string]bool) error {
	built, err := builtin.Images(files)
	if err != nil {
		return err
	}
	for name, img := range built {
		if present[name] {
			continue
		}
		if _, err := e.images.Add(name, img); err != nil {
			return err
		}
	}
	return nil
}

// unpack unpacks images for containers in the background, as containerd
// unpacks what it pulls: a pod's first container does not wait for it
// (the kubelet's "pre-pulled"). An image not unpacked yet is unpacked by
// the first container that needs it.
func (e *Engine) unpack(imgs ...images.Image) {
	e.wg.Go(func() {
		for _, img := range imgs {
			if e.ctx.Err() != nil {
				return
			}
			v, named, err := e.images.Resolve(img.Name)
			if err == nil {
				_, err = e.snapshots.Get(v, named.Digest)
			}
			if err != nil {
				e.cfg.Logger.Warn("unpack image", "image", img.Name, "err", err)
			}
		}
	})
}

// ListImages lists the images pods can run.
func (e *Engine) ListImages() ([]images.Image, error) { return e.images.List() }

// Registry is the image store served over the OCI distribution API.
func (e *Engine) Registry() http.Handler {
	return &registry.Handler{Store: e.images, Token: e.cfg.Identity.Token, UploadDir: filepath.Join(e.cfg.DataDir, "uploads"),
		Pushed: func(img images.Image) { e.unpack(img) }}
}

// LoadImages adds the images of an archive (docker save, or an OCI layout
// in a tar).
func (e *Engine) LoadImages(r io.Reader) ([]images.Image, error) {
	got, err := e.images.Load(r)
	if err != nil {
		return got, status.Invalid("archive", "%v", err)
	}
	e.unpack(got...)
	return got, nil
}

// RemoveImage removes an image's name from the store.
func (e *Engine) RemoveImage(ref string) error {
	if _, err := images.Normalize(ref); err != nil {
		return status.Invalid("name", "%v", err)
	}
	if err := e.images.Remove(ref); err != nil {
		if errors.Is(err, images.ErrNotFound) {
			return status.Errorf(status.NotFound, "Image %q is not in the store (kubeyard images list).", ref)
		}
		return fmt.Errorf("engine: %w", err)
	}
	return nil
}
