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

	"github.com/fsnotify/fsnotify"
)

// Frontend is one frontend as the engine configures it: a file per frontend
// in the load balancer's config folder. The load balancer runs as a process
// of its own that follows that folder, so cluster endpoints keep serving
// while the engine is down or restarting.
type Frontend struct {
	Addr string `json:"addr"`
	// Namespace is the named network namespace the frontend listens in
	// (empty: the load balancer's own): a cluster's internal endpoint is
	// served inside its VPC network.
	Namespace string `json:"namespace,omitempty"`
	// Protocol is "tcp" (the default, also when empty) or "udp".
	Protocol string `json:"protocol,omitempty"`
	// BackendNamespace is where the backends are dialled (empty: the load
	// balancer's own namespace): a Service's pods are in a VPC network.
	BackendNamespace string `json:"backendNamespace,omitempty"`
	// Unchecked backends are not health-checked: they are a Service's
	// ready endpoints, which their kubelets check.
	Unchecked bool      `json:"unchecked,omitempty"`
	Backends  []Backend `json:"backends"`
	// Allow lists the source ranges admitted (CIDRs); absent admits every
	// source (null), empty admits none.
	Allow []string `json:"allow"`
}

// key tells frontends apart: by address and protocol within their
// namespace.
func (f Frontend) key() string {
	k := f.Addr
	if f.Namespace != "" {
		k = f.Namespace + "/" + k
	}
	if f.udp() {
		k += "/udp"
	}
	return k
}

func (f Frontend) udp() bool { return f.Protocol == "udp" }

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

// ReadFrontend reads frontend name from dir.
func ReadFrontend(dir, name string) (Frontend, error) {
	var f Frontend
	data, err := os.ReadFile(filepath.Join(dir, name+frontendExt))
	if err != nil {
		return f, err
	}
	return f, json.Unmarshal(data, &f)
}

// RemoveFrontend removes frontend name from dir.
func RemoveFrontend(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name+frontendExt)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("loadbalancer: %w", err)
	}
	return nil
}

// appliedDir holds, for each frontend file, a copy of the content the load
// balancer has applied: the engine waits on it to know a change is live.
const appliedDir = "applied"

func ack(dir, file, content string) error {
	if err := os.MkdirAll(filepath.Join(dir, appliedDir), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, appliedDir, file+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, appliedDir, file))
}

// refusedExt marks, in appliedDir, the content of a frontend file that
// did not parse: the load balancer read it and kept what it had.
const refusedExt = ".refused"

// WaitApplied waits until the load balancer following dir has applied what
// frontend name says now.
func WaitApplied(ctx context.Context, dir, name string) error {
	return waitAcked(ctx, dir, name, frontendExt, "applied")
}

// WaitRefused waits until the load balancer following dir has read what
// frontend name says now and refused it (it does not parse).
func WaitRefused(ctx context.Context, dir, name string) error {
	return waitAcked(ctx, dir, name, frontendExt+refusedExt, "refused")
}

// WaitRemoved waits until the load balancer following dir no longer
// serves the frontends named (their files removed).
func WaitRemoved(ctx context.Context, dir string, names ...string) error {
	for _, name := range names {
		for {
			_, err := os.Stat(filepath.Join(dir, appliedDir, name+frontendExt))
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("loadbalancer: frontend %s is still served: %w", name, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func waitAcked(ctx context.Context, dir, name, ackExt, what string) error {
	for {
		want, err := os.ReadFile(filepath.Join(dir, name+frontendExt))
		if err != nil {
			return fmt.Errorf("loadbalancer: %w", err)
		}
		got, err := os.ReadFile(filepath.Join(dir, appliedDir, name+ackExt))
		if err == nil && string(got) == string(want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loadbalancer: frontend %s is not %s: %w", name, what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
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
// still held, say) is tried again on the next round; a file that does not
// parse keeps what it last said. Where the folder can be watched (inotify),
// a round follows each change at once, and otherwise runs only to retry or
// every rescan: reading every file five times a second was most of an idle
// load balancer's work, and grew with every cluster.
func (lb *LoadBalancer) Follow(ctx context.Context, dir string, interval time.Duration) error {
	applied := map[string]string{}        // frontend key -> frontend applied, as JSON
	lastGood := map[string]frontendFile{} // file -> its last content that parsed
	refused := map[string]string{}        // files whose parse error was logged -> their content then
	acked := map[string]string{}          // file -> content acknowledged
	var changes *dirWatch
	defer func() { changes.Close() }()
	for {
		if changes == nil {
			changes = watchDir(dir)
		}
		failed := false // a frontend to try again
		files, err := readFrontends(dir)
		if err != nil {
			lb.cfg.Logger.Error("read frontends", "dir", dir, "err", err)
		} else {
			var gone []string // files removed: their acks go once their frontends have
			for file := range lastGood {
				if _, ok := files[file]; !ok {
					delete(lastGood, file)
					delete(refused, file)
					delete(acked, file)
					gone = append(gone, file)
				}
			}
			want := map[string]Frontend{}
			for file, f := range files {
				switch {
				case f.err == nil:
					if _, ok := refused[file]; ok {
						os.Remove(filepath.Join(dir, appliedDir, file+refusedExt))
						delete(refused, file)
					}
					lastGood[file] = f
				case !seen(refused, file) || refused[file] != f.raw:
					// Each content that does not parse, once: a file read
					// half written is refused, and then what it became.
					lb.cfg.Logger.Error("frontend", "file", file, "err", f.err)
					if err := ack(dir, file+refusedExt, f.raw); err != nil {
						lb.cfg.Logger.Error("frontend", "file", file, "err", err)
					}
					refused[file] = f.raw
				}
				if good, ok := lastGood[file]; ok {
					want[good.key()] = good.Frontend
				}
			}
			// Removals first: an address moved between files is then free.
			for addr := range applied {
				if _, ok := want[addr]; !ok {
					lb.Remove(addr)
					delete(applied, addr)
					lb.cfg.Logger.Info("frontend removed", "frontend", addr)
				}
			}
			for _, file := range gone {
				os.Remove(filepath.Join(dir, appliedDir, file))
				os.Remove(filepath.Join(dir, appliedDir, file+refusedExt))
			}
			for addr, fe := range want {
				key, _ := json.Marshal(fe)
				if applied[addr] == string(key) {
					continue
				}
				if err := lb.Ensure(fe); err != nil {
					lb.cfg.Logger.Error("frontend", "frontend", addr, "err", err)
					failed = true
					continue
				}
				applied[addr] = string(key)
				lb.cfg.Logger.Info("frontend configured", "frontend", addr, "backends", len(fe.Backends), "allow", fe.Allow)
			}
			for file, good := range lastGood {
				key, _ := json.Marshal(good.Frontend)
				if applied[good.key()] == string(key) && acked[file] != good.raw {
					if err := ack(dir, file, good.raw); err != nil {
						lb.cfg.Logger.Error("frontend", "file", file, "err", err)
						continue
					}
					acked[file] = good.raw
				}
			}
		}
		wait := interval
		if changes != nil && !failed && err == nil {
			wait = rescan
		}
		if !changes.next(ctx, wait) {
			lb.Close()
			return nil
		}
		if changes != nil && changes.lost {
			changes.Close()
			changes = nil
		}
	}
}

// rescan is how often a watched folder is read all the same.
const rescan = 10 * time.Second

// dirWatch reports changes to a folder's entries.
type dirWatch struct {
	dir  string
	w    *fsnotify.Watcher
	lost bool // the folder went, or events were lost: watch it anew
}

// watchDir watches dir, or returns nil where it cannot be (no folder yet,
// no inotify): the caller reads it every interval instead.
func watchDir(dir string) *dirWatch {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil
	}
	return &dirWatch{dir: filepath.Clean(dir), w: w}
}

// Close stops watching (a nil dirWatch watches nothing).
func (d *dirWatch) Close() {
	if d != nil {
		d.w.Close()
	}
}

// next waits up to wait for a change (on a nil dirWatch, the whole wait),
// then takes every change already queued: one round follows them all. It
// reports false once ctx ends.
func (d *dirWatch) next(ctx context.Context, wait time.Duration) bool {
	var events chan fsnotify.Event
	var errs chan error
	if d != nil {
		events, errs = d.w.Events, d.w.Errors
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	took := func(ev fsnotify.Event) {
		if ev.Name == d.dir && ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
			d.lost = true
		}
	}
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case ev := <-events:
		took(ev)
	case <-errs: // the queue overflowed, say
		d.lost = true
	}
	for {
		select {
		case ev := <-events:
			took(ev)
		case <-errs:
			d.lost = true
		default:
			return true
		}
	}
}

func seen(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
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

// FrontendNames lists the frontends configured in dir whose names have
// the prefix.
func FrontendNames(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loadbalancer: %w", err)
	}
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), frontendExt); ok && strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out, nil
}
