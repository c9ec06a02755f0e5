package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HoldTTL is how long a hold outlives an engine that stopped renewing it
// (a crash on another machine, a network partition).
const HoldTTL = 10 * time.Second

// holdKey is the key of the hold, under the store's prefix.
const holdKey = "engine"

// Holder is the engine that holds a store.
type Holder struct {
	// Addr is the engine's API address.
	Addr    string `json:"addr"`
	DataDir string `json:"dataDir,omitempty"`
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	// Started is the process's start time in clock ticks since boot
	// (/proc/PID/stat): with PID, it tells a process from a later one
	// that got the same PID.
	Started uint64    `json:"started"`
	Since   time.Time `json:"since"`
}

// ThisProcess is the Holder for this process, serving at addr.
func ThisProcess(addr, dataDir string) Holder {
	host, _ := os.Hostname()
	return Holder{Addr: addr, DataDir: dataDir, Host: host, PID: os.Getpid(), Started: processStart(os.Getpid()), Since: time.Now().UTC()}
}

// HeldError is the failure to hold a store that another engine holds.
type HeldError struct {
	Prefix string
	By     Holder
}

func (e *HeldError) Error() string {
	hint := "give this one a prefix of its own with --etcd-prefix"
	if strings.HasPrefix(e.Prefix, "in ") { // an embedded etcd's folder
		hint = "give this one a data dir of its own with --data-dir"
	}
	return fmt.Sprintf("store: the engine state %s is held by the engine at %s (pid %d on %s, data dir %s, since %s); stop that engine, or %s",
		e.where(), e.By.Addr, e.By.PID, e.By.Host, e.By.DataDir, e.By.Since.Format(time.RFC3339), hint)
}

func (e *HeldError) where() string {
	if strings.HasPrefix(e.Prefix, "in ") {
		return e.Prefix
	}
	return "under prefix " + e.Prefix
}

// lease is a held store's etcd lease, renewed until released.
type lease struct {
	id     clientv3.LeaseID
	cancel context.CancelFunc
	lost   chan struct{}
	once   sync.Once
}

// Hold takes the store for this engine until Close: a key under the prefix
// on an etcd lease that the store renews. While another engine holds it,
// Hold fails with a *HeldError naming that engine. A hold left by an
// engine of this machine whose process is gone (a crash) is taken over at
// once; one left elsewhere expires HoldTTL after its engine stopped
// renewing it.
func (s *Store) Hold(ctx context.Context, me Holder) error {
	grant, err := s.cli.Grant(ctx, int64(HoldTTL/time.Second))
	if err != nil {
		return fmt.Errorf("store: hold: %w", err)
	}
	data, err := json.Marshal(me)
	if err != nil {
		return err
	}
	key := s.prefix + holdKey
	for range 2 {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(data), clientv3.WithLease(grant.ID))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return fmt.Errorf("store: hold: %w", err)
		}
		if resp.Succeeded {
			return s.keepHolding(grant.ID)
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // released meanwhile
		}
		var by Holder
		_ = json.Unmarshal(kvs[0].Value, &by)
		if by.Host != me.Host || processAlive(by.PID, by.Started) {
			_, _ = s.cli.Revoke(context.WithoutCancel(ctx), grant.ID)
			return &HeldError{Prefix: s.prefix, By: by}
		}
		// Its engine crashed on this machine: nothing renews that hold,
		// but its lease may live on for a while. Take it over.
		if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).Then(clientv3.OpDelete(key)).Commit(); err != nil {
			return fmt.Errorf("store: hold: %w", err)
		}
		if kvs[0].Lease != 0 {
			_, _ = s.cli.Revoke(ctx, clientv3.LeaseID(kvs[0].Lease))
		}
	}
	_, _ = s.cli.Revoke(context.WithoutCancel(ctx), grant.ID)
	return fmt.Errorf("store: hold: the hold under %s keeps changing hands", s.prefix)
}

// keepHolding renews the lease until release.
func (s *Store) keepHolding(id clientv3.LeaseID) error {
	ctx, cancel := context.WithCancel(context.Background())
	alive, err := s.cli.KeepAlive(ctx, id)
	if err != nil {
		cancel()
		return fmt.Errorf("store: hold: %w", err)
	}
	l := &lease{id: id, cancel: cancel, lost: make(chan struct{})}
	go func() {
		for range alive {
		}
		// The channel closes on release, or when the lease could not be
		// renewed in time: another engine may hold the store now.
		if ctx.Err() == nil {
			l.once.Do(func() { close(l.lost) })
		}
	}()
	s.lease = l
	return nil
}

// HoldLost is closed if the store's hold lapsed (it could not be renewed
// in time): another engine may have taken the state, and this one must
// stop. Nil when the store is not held.
func (s *Store) HoldLost() <-chan struct{} {
	if s.lease == nil {
		return nil
	}
	return s.lease.lost
}

// release gives the hold up, so that another engine may take it at once.
func (s *Store) release() {
	if s.lease == nil {
		return
	}
	s.lease.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = s.cli.Revoke(ctx, s.lease.id)
	s.lease = nil
}

// lockFile is the file in the embedded etcd's folder that its engine
// locks (flock: the kernel releases it when the process ends, however it
// ends) and writes itself into.
const lockFile = "engine.lock"

// lockDir holds the embedded etcd's folder for me, or fails with a
// *HeldError naming the engine that holds it.
func lockDir(dir string, me Holder) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		var by Holder
		data, _ := os.ReadFile(f.Name())
		_ = json.Unmarshal(data, &by)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &HeldError{Prefix: "in " + dir, By: by}
		}
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	data, _ := json.Marshal(me)
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(data, 0)
	}
	return f, nil
}

// processAlive says whether process pid, started at started (clock ticks
// since boot), still runs on this machine.
func processAlive(pid int, started uint64) bool {
	return pid > 0 && processStart(pid) == started && started != 0
}

// processStart reads a process's start time (field 22 of /proc/PID/stat),
// or 0 when there is no such process.
func processStart(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis.
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64)
	return v
}
