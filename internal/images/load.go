package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Load adds the images of an archive, as `docker save` writes one (every
// repository tag in its manifest.json) or as an OCI image layout in a tar
// (every manifest its index names, by io.containerd.image.name or
// org.opencontainers.image.ref.name), and returns them. An archive whose
// images carry no name is refused: the store keeps named images only.
func (s *Store) Load(r io.Reader) ([]Image, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(s.Dir()), "images-load-")
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "archive.tar")
	f, err := os.Create(archive)
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("images: read the archive: %w", err)
	}
	kind, err := archiveKind(archive)
	if err != nil {
		return nil, err
	}
	named := map[string]v1.Image{}
	switch kind {
	case "docker":
		if named, err = dockerImages(archive); err != nil {
			return nil, err
		}
	case "oci":
		dir := filepath.Join(tmp, "layout")
		if err := untar(archive, dir); err != nil {
			return nil, err
		}
		if named, err = layoutImages(dir); err != nil {
			return nil, err
		}
	}
	if len(named) == 0 {
		return nil, errors.New("images: the archive names no image (tag it, e.g. docker save NAME:TAG)")
	}
	var out []Image
	for ref, img := range named {
		got, err := s.Add(ref, img)
		if err != nil {
			return out, err
		}
		out = append(out, got)
	}
	return out, nil
}

// archiveKind says whether a tar is a docker save ("docker") or an OCI
// layout ("oci").
func archiveKind(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", errors.New("images: the archive is neither a docker save (manifest.json) nor an OCI layout (oci-layout, index.json)")
		}
		if err != nil {
			return "", fmt.Errorf("images: the archive is not a tar: %w", err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			return "docker", nil
		case "oci-layout":
			return "oci", nil
		}
	}
}

func dockerImages(archive string) (map[string]v1.Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(archive) }
	manifest, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	out := map[string]v1.Image{}
	for _, m := range manifest {
		for _, t := range m.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("images: tag %q: %w", t, err)
			}
			img, err := tarball.Image(opener, &tag)
			if err != nil {
				return nil, fmt.Errorf("images: %s: %w", t, err)
			}
			out[t] = img
		}
	}
	return out, nil
}

func layoutImages(dir string) (map[string]v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	out := map[string]v1.Image{}
	for _, d := range m.Manifests {
		ref := d.Annotations[nameAnnotation]
		if ref == "" {
			ref = d.Annotations[refAnnotation]
		}
		if ref == "" || !d.MediaType.IsImage() {
			continue // unnamed, or an index (multi-platform images: save one platform)
		}
		img, err := p.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("images: %s: %w", ref, err)
		}
		out[ref] = img
	}
	return out, nil
}

// untar extracts a tar of plain files and folders (an OCI layout) into dir.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		target, err := within(dir, h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// within is name under dir, refusing a name that climbs out of it.
func within(dir, name string) (string, error) {
	target := filepath.Join(dir, filepath.Clean("/"+name))
	if !strings.HasPrefix(target, filepath.Clean(dir)+string(os.PathSeparator)) && target != filepath.Clean(dir) {
		return "", fmt.Errorf("images: %q is outside the archive", name)
	}
	return target, nil
}
