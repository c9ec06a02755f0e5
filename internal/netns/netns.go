// Package netns manages named network namespaces (those of `ip netns`,
// bind-mounted under /run/netns): creating, entering and deleting them,
// and netlink handles inside them. Nodes, pods and VPC networks each live
// in one; the host's own namespace is never changed.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Dir is where named namespaces are bind-mounted.
const Dir = "/run/netns"

// Path is the file of a named namespace, as a container's spec names it.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists says whether a named namespace exists.
func Exists(name string) bool {
	_, err := os.Stat(Path(name))
	return err == nil
}

// Create creates a named namespace with its loopback up; an existing one
// is kept as it is.
func Create(name string) error {
	if Exists(name) {
		return nil
	}
	err := onThread(func() error {
		ns, err := netns.NewNamed(name) // moves this thread into it
		if err != nil {
			return err
		}
		return ns.Close()
	})
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	h, err := Handle(name)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("netns %s: loopback: %w", name, err)
	}
	return nil
}

// Delete deletes a named namespace; one that does not exist is gone.
// Interfaces in it go with it (and veth peers elsewhere with them).
func Delete(name string) error {
	if !Exists(name) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	return nil
}

// List returns the named namespaces whose name starts with prefix.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Handle is a netlink handle inside a named namespace.
func Handle(name string) (*netlink.Handle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netns %s: netlink: %w", name, err)
	}
	return h, nil
}

// Open returns a handle on a named namespace's file (for moving an
// interface into it); the caller closes it.
func Open(name string) (netns.NsHandle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return ns, fmt.Errorf("netns %s: %w", name, err)
	}
	return ns, nil
}

// Do runs fn on a thread inside the named namespace: sockets it opens
// stay in that namespace, as do the sysctls it writes under
// /proc/sys/net.
func Do(name string, fn func() error) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("netns %s: enter: %w", name, err)
		}
		return fn()
	})
}

// SetSysctl writes a sysctl of the named namespace (a key under
// /proc/sys, as net/ipv4/ip_forward).
func SetSysctl(name, key, value string) error {
	return Do(name, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// onThread runs fn on a locked OS thread and brings the thread back to
// this process's namespace after; a thread that cannot come back is
// left locked, so that Go retires it rather than reuse it elsewhere.
func onThread(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(fnErr, fmt.Errorf("netns: back to the process's namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}
