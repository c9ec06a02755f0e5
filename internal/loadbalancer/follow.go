package loadbalancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Frontend is one frontend as the engine configures it: a file per frontend
// in the load balancer's config folder. The load balancer runs as a process
// of its own that follows that folder, so cluster endpoints keep serving
// while the engine is down or restarting.
type Frontend struct {
	Addr     string    `json:"addr"`
	Backends []Backend `json:"backends"`
}

const frontendExt = ".json"

// WriteFrontend configures frontend name in dir (atomically: the follower
// never reads half a file).
func WriteFrontend(dir, name string, f Frontend) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("loadbalancer: %w", err)
	}
	path := filepath.Join(dir, name+frontendExt)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("loadbalancer: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("loadbalancer: %w", err)
	}
	return nil
}

// RemoveFrontend removes frontend name from dir.
func RemoveFrontend(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name+frontendExt)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("loadbalancer: %w", err)
	}
	return nil
}

// WaitListening waits until addr accepts connections (listening is true) or
// refuses them (false): the follower applies a change within an interval.
func WaitListening(ctx context.Context, addr string, listening bool) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		if (err == nil) == listening {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loadbalancer: %s: listening is not %v: %w", addr, listening, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Follow serves the frontends configured in dir until ctx ends, applying
// every change within interval. A frontend that cannot listen (its address
// still held, say) is tried again on the next round.
func (lb *LoadBalancer) Follow(ctx context.Context, dir string, interval time.Duration) error {
	applied := map[string]string{} // file -> content applied
	addrs := map[string]string{}   // file -> frontend address
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		want, err := readFrontends(dir)
		if err != nil {
			lb.cfg.Logger.Error("read frontends", "dir", dir, "err", err)
		} else {
			// Removals first, so an address moved between files is free.
			for file, addr := range addrs {
				if _, ok := want[file]; !ok {
					lb.Remove(addr)
					delete(addrs, file)
					delete(applied, file)
					lb.cfg.Logger.Info("frontend removed", "frontend", addr)
				}
			}
			for file, c := range want {
				if c.err != nil {
					// Keep serving what was applied; say what is wrong.
					if applied[file] != c.raw {
						lb.cfg.Logger.Error("frontend", "file", file, "err", c.err)
						applied[file] = c.raw
					}
					continue
				}
				if applied[file] == c.raw {
					continue
				}
				if old, ok := addrs[file]; ok && old != c.Addr {
					lb.Remove(old)
				}
				if err := lb.Ensure(c.Addr, c.Backends); err != nil {
					lb.cfg.Logger.Error("frontend", "file", file, "err", err)
					continue
				}
				applied[file], addrs[file] = c.raw, c.Addr
				lb.cfg.Logger.Info("frontend configured", "frontend", c.Addr, "backends", len(c.Backends))
			}
		}
		select {
		case <-ctx.Done():
			lb.Close()
			return nil
		case <-t.C:
		}
	}
}

type frontendFile struct {
	Frontend
	raw string
	err error // the file does not parse
}

func readFrontends(dir string) (map[string]frontendFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]frontendFile{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), frontendExt) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		var f Frontend
		err = json.Unmarshal(data, &f)
		out[e.Name()] = frontendFile{Frontend: f, raw: string(data), err: err}
	}
	return out, nil
}
