package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Unpack writes img's file system, its layers flattened, into dir (which
// must exist): a container's root file system. Every path stays inside
// dir whatever the image's symlinks say (os.Root resolves them there), and
// device nodes are left out (the runtime gives a container its /dev).
func Unpack(img v1.Image, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	defer root.Close()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("images: unpack: %w", err)
		}
		if err := unpackEntry(root, tr, h); err != nil {
			return fmt.Errorf("images: unpack %s: %w", h.Name, err)
		}
	}
}

func unpackEntry(root *os.Root, r io.Reader, h *tar.Header) error {
	name := path.Clean("./" + h.Name)
	if name == "." {
		return nil
	}
	mode := fs.FileMode(h.Mode).Perm() | modeBits(h.Mode)
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(name, mode.Perm()); err != nil {
			return err
		}
	case tar.TypeReg:
		_ = root.Remove(name) // a file an upper layer replaces (it may be a symlink)
		f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		_ = root.Remove(name)
		if err := root.Symlink(h.Linkname, name); err != nil {
			return err
		}
		return root.Lchown(name, h.Uid, h.Gid)
	case tar.TypeLink:
		_ = root.Remove(name)
		return root.Link(path.Clean("./"+h.Linkname), name)
	default:
		return nil // devices and FIFOs: the runtime makes what a container has
	}
	if err := root.Lchown(name, h.Uid, h.Gid); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return root.Chmod(name, mode) // after chown, which clears setuid
}

// modeBits are the setuid, setgid and sticky bits of a tar mode.
func modeBits(m int64) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}
