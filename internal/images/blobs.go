package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrDigest is content that does not match the digest it came with.
var ErrDigest = errors.New("images: the content does not match its digest")

// ErrUnsupportedManifest is a manifest the store cannot name (an index
// of several platforms, or a schema it does not know).
var ErrUnsupportedManifest = errors.New("images: only image manifests (OCI, or Docker schema 2) can be stored")

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.Dir(), "blobs", h.Algorithm, h.Hex)
}

// Blob opens a blob of the store, with its size.
func (s *Store) Blob(digest string) (io.ReadCloser, int64, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	f, err := os.Open(s.blobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: blob %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// pendingFor is how long an uploaded blob no image uses yet is kept from
// the collector, for the manifest that will use it.
const pendingFor = time.Hour

// WriteBlob stores a blob if its content has the digest (sha256), as a
// push uploads it before the manifest that uses it.
func (s *Store) WriteBlob(digest string, r io.Reader) (int64, error) {
	h, err := v1.NewHash(digest)
	if err != nil || h.Algorithm != "sha256" {
		return 0, fmt.Errorf("%w: %q is not a sha256 digest", ErrDigest, digest)
	}
	dir := filepath.Join(s.Dir(), "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if hex.EncodeToString(sum.Sum(nil)) != h.Hex {
		return n, fmt.Errorf("%w: got sha256:%x, said %s", ErrDigest, sum.Sum(nil), digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[v1.Hash]time.Time{}
	}
	s.pending[h] = time.Now()
	return n, os.Rename(tmp.Name(), s.blobPath(h))
}

// PutManifest stores an image manifest whose blobs are in the store
// under ref's name.
func (s *Store) PutManifest(ref string, mediaType types.MediaType, data []byte) (Image, error) {
	switch mediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
	default:
		return Image{}, fmt.Errorf("%w; got %s", ErrUnsupportedManifest, mediaType)
	}
	var m v1.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Image{}, fmt.Errorf("%w: %v", ErrUnsupportedManifest, err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if _, err := os.Stat(s.blobPath(d.Digest)); err != nil {
			return Image{}, fmt.Errorf("%w: blob %s of the manifest", ErrNotFound, d.Digest)
		}
	}
	img, err := partial.CompressedToImage(pushed{s: s, manifest: data, mediaType: mediaType, parsed: m})
	if err != nil {
		return Image{}, err
	}
	added, err := s.Add(ref, img)
	if err == nil {
		s.mu.Lock()
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			delete(s.pending, d.Digest) // an image uses it now
		}
		s.mu.Unlock()
	}
	return added, err
}

// pushed is an image whose manifest came in a push and whose blobs are in
// the store.
type pushed struct {
	s         *Store
	manifest  []byte
	mediaType types.MediaType
	parsed    v1.Manifest
}

func (p pushed) RawManifest() ([]byte, error)        { return p.manifest, nil }
func (p pushed) MediaType() (types.MediaType, error) { return p.mediaType, nil }
func (p pushed) RawConfigFile() ([]byte, error) {
	return os.ReadFile(p.s.blobPath(p.parsed.Config.Digest))
}
func (p pushed) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range append([]v1.Descriptor{p.parsed.Config}, p.parsed.Layers...) {
		if l.Digest == h {
			return blobLayer{p.s, l}, nil
		}
	}
	return nil, fmt.Errorf("%w: layer %s", ErrNotFound, h)
}

type blobLayer struct {
	s *Store
	d v1.Descriptor
}

func (l blobLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l blobLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l blobLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l blobLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.s.blobPath(l.d.Digest)) }
