package loadbalancer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/netns/netnstest"
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

func get(addr string) (string, error) { return getWith(client, addr) }

func getWith(c *http.Client, addr string) (string, error) {
	resp, err := c.Get("https://" + addr + "/")
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
	if err := lb.Ensure(Frontend{Addr: addr, Backends: []Backend{up, notReady, gone}}); err != nil {
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
	if err := lb.Ensure(Frontend{Addr: addr, Backends: []Backend{b}}); err != nil {
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

// getFrom is get with the connection's source address bound to source.
func getFrom(source, addr string) (string, error) {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 2 * time.Second}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	return getWith(c, addr)
}

func TestAdmitsOnlyAllowedSources(t *testing.T) {
	_, b := backend(t, "up", true)
	lb := New(Config{CheckInterval: 50 * time.Millisecond})
	defer lb.Close()
	addr := frontendAddr(t)
	if err := lb.Ensure(Frontend{Addr: addr, Backends: []Backend{b}, Allow: []string{"127.77.0.0/16"}}); err != nil {
		t.Fatal(err)
	}
	if body, err := getFrom("127.77.0.5", addr); err != nil || body != "up" {
		t.Fatalf("authorized source: %q %v", body, err)
	}
	if _, err := getFrom("127.88.0.5", addr); err == nil {
		t.Fatal("a source outside the list got through")
	}

	// A kept-alive connection from a source that is then removed is cut.
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.77.0.6")}}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := lb.Ensure(Frontend{Addr: addr, Backends: []Backend{b}, Allow: []string{"127.78.0.0/16"}}); err != nil {
		t.Fatal(err)
	}
	tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection of a removed source stays open: %v", err)
	}
	if body, err := getFrom("127.78.0.5", addr); err != nil || body != "up" {
		t.Fatalf("newly authorized source: %q %v", body, err)
	}
	if _, err := getFrom("127.77.0.5", addr); err == nil {
		t.Fatal("a removed source got through")
	}

	// No list: every source.
	if err := lb.Ensure(Frontend{Addr: addr, Backends: []Backend{b}}); err != nil {
		t.Fatal(err)
	}
	if _, err := getFrom("127.88.0.5", addr); err != nil {
		t.Fatal(err)
	}
}

// A frontend in a network namespace is served there, not in the load
// balancer's own namespace, and forwards to backends in its own.
func TestFrontendInANamespace(t *testing.T) {
	ns := netnstest.Name(t, "lb")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	_, up := backend(t, "up", true)
	lb := New(Config{CheckInterval: 50 * time.Millisecond})
	defer lb.Close()
	addr := frontendAddr(t)
	fe := Frontend{Addr: addr, Namespace: ns, Backends: []Backend{up}}
	if err := lb.Ensure(fe); err != nil {
		t.Fatal(err)
	}
	got, err := getIn(ns, addr)
	if err != nil || got != "up" {
		t.Fatalf("through the frontend in %s: %q, %v", ns, got, err)
	}
	if _, err := get(addr); err == nil {
		t.Error("the frontend answers outside its namespace")
	}
	if h := lb.Healthy(fe.key()); len(h) != 1 {
		t.Errorf("healthy backends by the frontend's key: %v", h)
	}
	lb.Remove(fe.key())
	if _, err := getIn(ns, addr); err == nil {
		t.Error("a removed frontend still answers")
	}
}

// getIn is get from inside the named namespace.
func getIn(ns, addr string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = netns.Do(ns, func() error {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	return getWith(c, addr)
}

// A UDP frontend relays each client's datagrams to a backend dialled in
// the backend namespace, and its answers back; unchecked backends need
// no health check, and sources not admitted get nothing.
func TestUDPToABackendNamespace(t *testing.T) {
	ns := netnstest.Name(t, "udp")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	var echo net.PacketConn
	if err := netns.Do(ns, func() (err error) { echo, err = net.ListenPacket("udp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	lb := New(Config{})
	defer lb.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	fe := Frontend{Addr: addr, Protocol: "udp", BackendNamespace: ns, Unchecked: true, Backends: []Backend{{Addr: echo.LocalAddr().String()}}}
	if err := lb.Ensure(fe); err != nil {
		t.Fatal(err)
	}
	ask := func(from string) (string, error) {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(from+":0")), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return "", err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	if got, err := ask("127.0.0.1"); err != nil || got != "echo ping" {
		t.Fatalf("through the UDP frontend: %q %v", got, err)
	}
	fe.Allow = []string{"127.0.0.2/32"}
	if err := lb.Ensure(fe); err != nil {
		t.Fatal(err)
	}
	if got, err := ask("127.0.0.1"); err == nil {
		t.Errorf("a source not admitted was answered: %q", got)
	}
	if got, err := ask("127.0.0.2"); err != nil || got != "echo ping" {
		t.Errorf("an admitted source: %q %v", got, err)
	}
}

// A backend that several frontends forward to (a cluster's public and
// internal endpoints) is checked once an interval, over one kept
// connection, and no longer once no frontend has it.
func TestFrontendsShareTheirBackendsChecks(t *testing.T) {
	var readyz, handshakes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			readyz.Add(1)
		}
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	b := Backend{Addr: srv.Listener.Addr().String(), ReadyURL: srv.URL + "/readyz"}

	const interval = 50 * time.Millisecond
	lb := New(Config{CheckInterval: interval})
	defer lb.Close()
	a1, a2 := frontendAddr(t), frontendAddr(t)
	for _, addr := range []string{a1, a2} {
		if err := lb.Ensure(Frontend{Addr: addr, Backends: []Backend{b}}); err != nil {
			t.Fatal(err)
		}
	}
	start := readyz.Load()
	time.Sleep(20 * interval)
	if n := readyz.Load() - start; n < 10 || n > 25 {
		t.Errorf("two frontends' backend checked %d times in 20 intervals, want about 20 (once an interval)", n)
	}
	if n := handshakes.Load(); n > 2 {
		t.Errorf("%d TLS handshakes for the checks, want the connection kept", n)
	}

	lb.Remove(a1)
	if h := lb.Healthy(a2); len(h) != 1 {
		t.Fatalf("the other frontend's backend lost its check: healthy %v", h)
	}
	lb.Remove(a2)
	time.Sleep(2 * interval)
	stopped := readyz.Load()
	time.Sleep(4 * interval)
	if n := readyz.Load() - stopped; n != 0 {
		t.Errorf("backend checked %d times after its last frontend went", n)
	}
}
