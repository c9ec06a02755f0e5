package store

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestHold: one engine per prefix. A second engine on the same prefix
// fails naming the first; another prefix is its own; a clean stop frees
// the hold at once; the hold of an engine that crashed on this machine is
// taken over at once, one held from another machine is not.
func TestHold(t *testing.T) {
	ctx := context.Background()
	first, err := Open(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() }) // last: the other stores use its etcd
	endpoints := []string{first.etcd.Clients[0].Addr().String()}
	open := func(prefix string) *Store {
		s, err := Open(ctx, Config{Endpoints: endpoints, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	me := ThisProcess("127.0.0.1:8080", "/data/a")
	if err := first.Hold(ctx, me); err != nil {
		t.Fatal(err)
	}
	second := open(DefaultPrefix)
	err = second.Hold(ctx, ThisProcess("127.0.0.1:9090", "/data/b"))
	var held *HeldError
	if !errors.As(err, &held) || held.By.Addr != "127.0.0.1:8080" || held.By.DataDir != "/data/a" {
		t.Fatalf("a second engine on the same prefix: %v", err)
	}
	if err := open("/other/").Hold(ctx, ThisProcess("127.0.0.1:9091", "")); err != nil {
		t.Fatalf("another prefix: %v", err)
	}
	first.release() // a clean stop
	if err := second.Hold(ctx, ThisProcess("127.0.0.1:9090", "/data/b")); err != nil {
		t.Fatalf("after a clean stop: %v", err)
	}
	store := first
	a, b := open("/p/"), open("/p/")
	if err := a.Hold(ctx, me); err != nil {
		t.Fatal(err)
	}
	a.release() // a clean stop
	if err := b.Hold(ctx, me); err != nil {
		t.Fatalf("after a clean stop: %v", err)
	}

	// A hold whose engine is gone from this machine, its lease still alive.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	crashed := ThisProcess("127.0.0.1:7070", "/data/c")
	crashed.PID = dead.Process.Pid
	plant(t, store, "/crashed/", crashed)
	if err := open("/crashed/").Hold(ctx, me); err != nil {
		t.Fatalf("the hold of a crashed engine: %v", err)
	}
	elsewhere := crashed
	elsewhere.Host = "another-machine"
	plant(t, store, "/elsewhere/", elsewhere)
	if err := open("/elsewhere/").Hold(ctx, me); !errors.As(err, &held) || held.By.Host != "another-machine" {
		t.Fatalf("the hold of an engine on another machine: %v", err)
	}
}

// plant writes a hold for h under prefix, on a live lease.
func plant(t *testing.T, s *Store, prefix string, h Holder) {
	ctx := context.Background()
	grant, err := s.cli.Grant(ctx, int64(time.Minute/time.Second))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(h)
	if _, err := s.cli.Put(ctx, prefix+holdKey, string(data), clientv3.WithLease(grant.ID)); err != nil {
		t.Fatal(err)
	}
}

func TestPrefixMustBeAFolder(t *testing.T) {
	if _, err := Open(context.Background(), Config{Endpoints: []string{"127.0.0.1:1"}, Prefix: "kubeyard"}); err == nil {
		t.Fatal("a prefix without slashes was accepted")
	}
}

// A second engine on an embedded etcd's folder fails at once, naming the
// first, rather than waiting on etcd's own locks; once the first closed,
// the folder opens.
func TestHoldEmbeddedFolder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	me := ThisProcess("127.0.0.1:8080", "/data/a")
	first, err := Open(ctx, Config{Dir: dir, NoSync: true, Holder: &me})
	if err != nil {
		t.Fatal(err)
	}
	other := ThisProcess("127.0.0.1:9090", "/data/a")
	_, err = Open(ctx, Config{Dir: dir, NoSync: true, Holder: &other})
	var held *HeldError
	if !errors.As(err, &held) || held.By.Addr != "127.0.0.1:8080" || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("a second engine on the folder: %v", err)
	}
	first.Close()
	again, err := Open(ctx, Config{Dir: dir, NoSync: true, Holder: &other})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
