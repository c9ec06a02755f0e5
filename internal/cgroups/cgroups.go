// Package cgroups finds and removes the cgroups containers run in, on
// cgroup v1 (a tree per controller, as on these Debian 12 machines) and v2
// (one tree).
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const root = "/sys/fs/cgroup"

// V2 says whether the host has the unified hierarchy.
func V2() bool {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return err == nil
}

// MemoryDir is the memory controller's folder of a cgroup path.
func MemoryDir(path string) string {
	if V2() {
		return filepath.Join(root, path)
	}
	return filepath.Join(root, "memory", path)
}

// Dirs are a cgroup path's folders, one per controller (one on v2), that
// exist.
func Dirs(path string) []string {
	trees := []string{root}
	if !V2() {
		trees, _ = filepath.Glob(filepath.Join(root, "*"))
	}
	var out []string
	for _, t := range trees {
		if st, err := os.Stat(filepath.Join(t, path)); err == nil && st.IsDir() {
			out = append(out, filepath.Join(t, path))
		}
	}
	return out
}

// Remove removes a cgroup and those below it under every controller,
// killing any process still in one.
func Remove(path string) error {
	var errs []error
	for _, dir := range Dirs(path) {
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // deepest first
			errs = append(errs, removeDir(dirs[i]))
		}
	}
	return errors.Join(errs...)
}

func removeDir(dir string) error {
	var err error
	for range 100 {
		procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, p := range strings.Fields(string(procs)) {
			if pid, e := strconv.Atoi(p); e == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		// A killed process leaves its cgroup soon after.
		if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("cgroups: remove %s: %w", dir, err)
}

// Named lists the top cgroups (below the root of any controller) whose
// name starts with prefix, each once: what an engine or a test made.
func Named(prefix string) []string {
	pattern := filepath.Join(root, "*", prefix+"*")
	if V2() {
		pattern = filepath.Join(root, prefix+"*")
	}
	dirs, _ := filepath.Glob(pattern)
	seen := map[string]bool{}
	var out []string
	for _, d := range dirs {
		if name := filepath.Base(d); !seen[name] {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}
