package images

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Snapshots keeps each image unpacked once, read-only, for containers to
// mount as the lower layer of their root file system (overlayfs), as
// containerd's snapshotter does.
type Snapshots struct {
	Dir string

	mu       sync.Mutex
	building map[string]*sync.Mutex
}

// Get returns the folder img is unpacked in (digest is img's), unpacking
// it the first time.
func (s *Snapshots) Get(img v1.Image, digest string) (string, error) {
	dir := s.dir(digest)
	if s.Unpacked(digest) {
		return dir, nil
	}
	lock := s.lock(digest)
	lock.Lock()
	defer lock.Unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	// Unpacked beside, then renamed: a crash never leaves half an image.
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", fmt.Errorf("images: snapshot: %w", err)
	}
	if err := Unpack(img, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("images: snapshot: %w", err)
	}
	return dir, nil
}

// Unpacked says whether the image of digest is unpacked.
func (s *Snapshots) Unpacked(digest string) bool {
	_, err := os.Stat(s.dir(digest))
	return err == nil
}

func (s *Snapshots) dir(digest string) string {
	return filepath.Join(s.Dir, strings.ReplaceAll(digest, ":", "-"))
}

func (s *Snapshots) lock(digest string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.building == nil {
		s.building = map[string]*sync.Mutex{}
	}
	if s.building[digest] == nil {
		s.building[digest] = &sync.Mutex{}
	}
	return s.building[digest]
}
