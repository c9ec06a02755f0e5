// Package netnstest names the network namespaces tests create
// (kubeyard-test-<test process>-<n>), deletes them when the test ends and
// sweeps those that test processes which are gone left behind (a test
// that times out panics without running its cleanups).
package netnstest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Prefix starts the name of every namespace a test creates.
const Prefix = "kubeyard-test-"

var (
	n     atomic.Int32
	swept sync.Once
)

// Name is a new namespace name for the test, deleted (if created) when
// it ends; role makes it readable.
func Name(t testing.TB, role string) string {
	t.Helper()
	swept.Do(func() { Sweep(nil) })
	name := fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), n.Add(1), role)
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// Sweep deletes the namespaces of test processes that are gone, calling
// also (if set) with each name first.
func Sweep(also func(name string)) {
	names, _ := netns.List(Prefix)
	for _, name := range names {
		pid, _, _ := strings.Cut(strings.TrimPrefix(name, Prefix), "-")
		if _, err := os.Stat("/proc/" + pid); !os.IsNotExist(err) {
			continue
		}
		if also != nil {
			also(name)
		}
		_ = netns.Delete(name)
	}
}

// Listen serves, in ns at addr, each connection the address it came
// from, until the test ends.
func Listen(t testing.TB, ns string, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
}

// Dial connects from ns to a Listen and returns the address it was seen
// from: the reply came back.
func Dial(ns string, addr netip.AddrPort, timeout time.Duration) (string, error) {
	var got []byte
	err := netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(timeout))
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}
