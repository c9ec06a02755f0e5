// Package store keeps the engine's state (clusters, node pools, operations,
// address allocations) as JSON documents in etcd: an embedded single-member
// etcd under the data dir by default, or an external etcd cluster shared by
// several engines. Every multi-key change is one etcd transaction with a
// compare on each key's revision, so a crash never leaves half a change and
// two writers never both win.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Errors of the store.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflicting change")
)

// DefaultPrefix is where an engine keeps its keys unless told otherwise.
const DefaultPrefix = "/kubeyard/"

// Config configures Open.
type Config struct {
	// Dir holds the embedded etcd's data; unused with Endpoints.
	Dir string
	// Endpoints are the client URLs of an external etcd cluster.
	Endpoints []string
	// Prefix namespaces every key (default DefaultPrefix): engines that
	// share one etcd cluster keep apart under prefixes of their own.
	Prefix string
	Logger *slog.Logger
	// NoSync stops the embedded etcd from syncing its writes to disk: for
	// tests, whose state is thrown away.
	NoSync bool
	// Holder, when set, is the engine that opens the store: it holds the
	// store until Close, and Open fails with a *HeldError while another
	// engine holds it (see Hold).
	Holder *Holder
}

// KV is what the engine reads and writes: documents by key, listed by
// prefix, changed in guarded transactions. *Store is the real one; tests
// wrap it (to stop an engine at a chosen write, say).
type KV interface {
	Get(ctx context.Context, key string, v any) (int64, error)
	List(ctx context.Context, prefix string) ([]Item, error)
	Commit(ctx context.Context, writes ...Write) error
}

// Store is the engine's state.
type Store struct {
	cli    *clientv3.Client
	etcd   *embed.Etcd
	prefix string
	lease  *lease
	lock   *os.File // the embedded etcd's folder, locked while held
	sub    bool     // a Sub: the connection is another's
}

// Open connects to (or starts) etcd.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("store: the key prefix %q must start and end with /", cfg.Prefix)
	}
	s := &Store{prefix: cfg.Prefix}
	endpoints := cfg.Endpoints
	if len(endpoints) == 0 {
		if cfg.Holder != nil {
			// Another engine on this data dir would wait for etcd's own
			// file locks forever: it fails at once, naming the holder.
			lock, err := lockDir(cfg.Dir, *cfg.Holder)
			if err != nil {
				return nil, err
			}
			s.lock = lock
		}
		e, err := startEmbedded(ctx, cfg.Dir, cfg.NoSync)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.etcd = e
		endpoints = []string{e.Clients[0].Addr().String()}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connect etcd: %w", err)
	}
	s.cli = cli
	// Fail now, not at the first request, if etcd does not answer.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, s.prefix+"ping"); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: etcd at %v does not answer: %w", endpoints, err)
	}
	if cfg.Holder != nil && s.lock == nil {
		if err := s.Hold(ctx, *cfg.Holder); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func freeLoopbackURL() (url.URL, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer ln.Close()
	return url.URL{Scheme: "http", Host: ln.Addr().String()}, nil
}

func startEmbedded(ctx context.Context, dir string, noSync bool) (*embed.Etcd, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "kubeyard"
	cfg.Dir = dir
	// A pool resized to 1,000 nodes takes 2,000 addresses in the commit
	// that records them; etcd's defaults (128 operations, 1.5 MiB) are for
	// Kubernetes objects.
	cfg.MaxTxnOps, cfg.MaxRequestBytes = MaxTxnOps, 16<<20
	cfg.UnsafeNoFsync = noSync
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	client, err := freeLoopbackURL()
	if err != nil {
		return nil, err
	}
	peer, err := freeLoopbackURL()
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("store: embedded etcd did not become ready in 60s")
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd: %w", ctx.Err())
	}
}

// Close gives up the hold (if any), disconnects, then stops the embedded
// etcd if there is one.
func (s *Store) Close() error {
	s.release()
	if s.sub {
		return nil
	}
	if s.cli != nil {
		s.cli.Close()
		s.cli = nil
	}
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
	if s.lock != nil {
		s.lock.Close() // and the lock with it
		s.lock = nil
	}
	return nil
}

// Sub is the store's keys under prefix (relative, ending in /), on the
// same connection: for tests that keep apart on one etcd. Closing it
// closes nothing.
func (s *Store) Sub(prefix string) *Store {
	return &Store{cli: s.cli, prefix: s.prefix + prefix, sub: true}
}

// Get reads key into v and returns its revision.
func (s *Store) Get(ctx context.Context, key string, v any) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix+key)
	if err != nil {
		return 0, fmt.Errorf("store: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrNotFound
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("store: decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// Item is one listed document.
type Item struct {
	Key      string
	Revision int64
	Value    []byte
}

// List returns every document under prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]Item, error) {
	resp, err := s.cli.Get(ctx, s.prefix+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", prefix, err)
	}
	items := make([]Item, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		items = append(items, Item{Key: string(kv.Key[len(s.prefix):]), Revision: kv.ModRevision, Value: kv.Value})
	}
	return items, nil
}

// ListAs decodes every document under prefix as a T.
func ListAs[T any](ctx context.Context, s KV, prefix string) ([]*T, error) {
	items, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]*T, 0, len(items))
	for _, it := range items {
		v := new(T)
		if err := json.Unmarshal(it.Value, v); err != nil {
			return nil, fmt.Errorf("store: decode %s: %w", it.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// MaxTxnOps is the most writes one Commit makes: an external etcd
// needs --max-txn-ops at least this (and --max-request-bytes 16 MiB) for
// node pools of a thousand nodes.
const MaxTxnOps = 8192

// Write is one change in a Commit.
type Write struct {
	Key string
	// Value is stored as JSON; nil deletes the key.
	Value any
	// Revision guards the change: Any skips the check, Absent requires the
	// key not to exist, anything else must equal the key's current revision.
	Revision int64
}

// Revision guards for Write.
const (
	Any    int64 = -1
	Absent int64 = 0
)

// Commit applies every write atomically, or none of them (ErrConflict) when a
// guard fails.
func (s *Store) Commit(ctx context.Context, writes ...Write) error {
	var conds []clientv3.Cmp
	var ops []clientv3.Op
	for _, w := range writes {
		key := s.prefix + w.Key
		if w.Revision != Any {
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(key), "=", w.Revision))
		}
		if w.Value == nil {
			ops = append(ops, clientv3.OpDelete(key))
			continue
		}
		data, err := json.Marshal(w.Value)
		if err != nil {
			return fmt.Errorf("store: encode %s: %w", w.Key, err)
		}
		ops = append(ops, clientv3.OpPut(key, string(data)))
	}
	resp, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}
