package loadbalancer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func backend(t *testing.T, name string, ready bool) (*httptest.Server, Backend) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv, Backend{Addr: srv.Listener.Addr().String(), ReadyURL: srv.URL + "/readyz"}
}

var client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}

func get(addr string) (string, error) {
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func frontendAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestForwardsOnlyToHealthyBackends(t *testing.T) {
	_, up := backend(t, "up", true)
	_, notReady := backend(t, "not-ready", false)
	down, gone := backend(t, "gone", true)
	down.Close()
	lb := New(Config{CheckInterval: 50 * time.Millisecond})
	defer lb.Close()
	addr := frontendAddr(t)
	if err := lb.Ensure(addr, []Backend{up, notReady, gone}); err != nil {
		t.Fatal(err)
	}
	if h := lb.Healthy(addr); len(h) != 1 || h[0] != up.Addr {
		t.Fatalf("healthy backends %v", h)
	}
	for range 10 {
		body, err := get(addr)
		if err != nil || body != "up" {
			t.Fatalf("got %q %v", body, err)
		}
	}
}

func TestNoHealthyBackendClosesConnections(t *testing.T) {
	srv, b := backend(t, "only", true)
	lb := New(Config{CheckInterval: 50 * time.Millisecond})
	defer lb.Close()
	addr := frontendAddr(t)
	if err := lb.Ensure(addr, []Backend{b}); err != nil {
		t.Fatal(err)
	}
	if _, err := get(addr); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(lb.Healthy(addr)) > 0 {
		if ctx.Err() != nil {
			t.Fatal("a dead backend stays healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := get(addr); err == nil {
		t.Fatal("a request went through with no healthy backend")
	}
	lb.Remove(addr)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("frontend still listens after Remove: %v", err)
	}
}
