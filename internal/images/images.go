// Package images is the engine's image store: the images pods run, kept as
// an OCI image layout under the data dir, each named in the layout's index
// by its full reference (docker.io/library/busybox:latest), as containerd
// names them. Images come in from `docker save` and OCI archives, from the
// OCI distribution API, or built in; a container's root filesystem is an
// image unpacked.
package images

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// nameAnnotation names an image in the layout's index, as containerd does;
// refAnnotation is the OCI spec's (the tag alone).
const (
	nameAnnotation = "io.containerd.image.name"
	refAnnotation  = "org.opencontainers.image.ref.name"
)

// ErrNotFound is a reference the store has no image for.
var ErrNotFound = errors.New("images: not in the store")

// Image is one named image of the store.
type Image struct {
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created,omitzero"`
}

// Store is an image store.
type Store struct {
	mu   sync.Mutex
	path layout.Path
	// pending are blobs pushed for a manifest yet to come, kept from the
	// collector for a while.
	pending map[v1.Hash]time.Time
}

// Open opens (or creates) the store under dir.
func Open(dir string) (*Store, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return nil, fmt.Errorf("images: create store in %s: %w", dir, err)
		}
	}
	return &Store{path: p}, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return string(s.path) }

// entries are the index's named manifests.
func (s *Store) entries() ([]v1.Descriptor, error) {
	idx, err := s.path.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	return m.Manifests, nil
}

// List returns the named images, by name.
func (s *Store) List() ([]Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	descs, err := s.entries()
	if err != nil {
		return nil, err
	}
	out := []Image{}
	for _, d := range descs {
		img := Image{Name: d.Annotations[nameAnnotation], Digest: d.Digest.String(), Size: d.Size}
		if i, err := s.path.Image(d.Digest); err == nil {
			if cfg, err := i.ConfigFile(); err == nil {
				img.Created = cfg.Created.Time
			}
			if layers, err := i.Layers(); err == nil {
				for _, l := range layers {
					if n, err := l.Size(); err == nil {
						img.Size += n
					}
				}
			}
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Add stores img under name (a reference, normalized), replacing what the
// name had.
func (s *Store) Add(ref string, img v1.Image) (Image, error) {
	full, err := Normalize(ref)
	if err != nil {
		return Image{}, err
	}
	if _, _, ok := isDigest(full); ok {
		return Image{}, fmt.Errorf("images: name an image by a tag, not %s", full)
	}
	digest, err := img.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("images: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tag := full[lastColon(full)+1:]
	if err := s.path.ReplaceImage(img, matchName(full), layout.WithAnnotations(map[string]string{nameAnnotation: full, refAnnotation: tag})); err != nil {
		return Image{}, fmt.Errorf("images: store %s: %w", full, err)
	}
	if err := s.collect(); err != nil {
		return Image{}, err
	}
	size, _ := img.Size()
	return Image{Name: full, Digest: digest.String(), Size: size}, nil
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ':':
			return i
		case '/':
			return -1
		}
	}
	return -1
}

// matchName matches the index entry called name.
func matchName(full string) func(v1.Descriptor) bool {
	return func(d v1.Descriptor) bool { return d.Annotations[nameAnnotation] == full }
}

// Resolve finds the image a reference names: by its full name, or by
// digest (repo@sha256:..., which any name of that repository or none
// matches).
func (s *Store) Resolve(ref string) (v1.Image, Image, error) {
	full, err := Normalize(ref)
	if err != nil {
		return nil, Image{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	descs, err := s.entries()
	if err != nil {
		return nil, Image{}, err
	}
	_, digest, byDigest := isDigest(full)
	i := slices.IndexFunc(descs, func(d v1.Descriptor) bool {
		if byDigest {
			return d.Digest.String() == digest
		}
		return d.Annotations[nameAnnotation] == full
	})
	if i < 0 {
		return nil, Image{}, fmt.Errorf("%w: %s", ErrNotFound, full)
	}
	img, err := s.path.Image(descs[i].Digest)
	if err != nil {
		return nil, Image{}, fmt.Errorf("images: %s: %w", full, err)
	}
	name := descs[i].Annotations[nameAnnotation]
	if byDigest {
		name = full
	}
	return img, Image{Name: name, Digest: descs[i].Digest.String(), Size: descs[i].Size}, nil
}

// Remove removes a name from the store, and the blobs no name uses any
// more.
func (s *Store) Remove(ref string) error {
	full, err := Normalize(ref)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	descs, err := s.entries()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(descs, matchName(full)) {
		return fmt.Errorf("%w: %s", ErrNotFound, full)
	}
	if err := s.path.RemoveDescriptors(matchName(full)); err != nil {
		return fmt.Errorf("images: remove %s: %w", full, err)
	}
	return s.collect()
}

// collect removes the blobs no named image uses.
func (s *Store) collect() error {
	unused, err := s.path.GarbageCollect()
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	for _, h := range unused {
		if at, ok := s.pending[h]; ok && time.Since(at) < pendingFor {
			continue
		}
		delete(s.pending, h)
		if err := s.path.RemoveBlob(h); err != nil {
			return fmt.Errorf("images: %w", err)
		}
	}
	return nil
}
