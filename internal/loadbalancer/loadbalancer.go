// Package loadbalancer is the TCP load balancer in front of each cluster's
// kube-apiservers: one frontend per cluster endpoint (a loopback address on
// port 443), health checks on every backend (TCP connect, then /readyz; one
// check per backend, however many frontends share it), and connections
// forwarded only to backends that passed their last check. TLS
// passes through untouched: clients see the kube-apiserver's certificate.
// A frontend may admit only some source addresses (a cluster's authorized
// networks): any other connection is reset before a byte of TLS.
package loadbalancer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/kubeyard/kubeyard/internal/netns"
)

// Backend is one kube-apiserver.
type Backend struct {
	Addr     string `json:"addr"`     // host:port
	ReadyURL string `json:"readyURL"` // checked with GET; 200 means ready
}

// Config configures a LoadBalancer.
type Config struct {
	Logger        *slog.Logger
	CheckInterval time.Duration
	CheckTimeout  time.Duration
}

// LoadBalancer owns the frontends.
type LoadBalancer struct {
	cfg       Config
	client    *http.Client
	mu        sync.Mutex
	frontends map[string]*frontend
	checks    checks
}

// New returns a LoadBalancer with defaults filled in.
func New(cfg Config) *LoadBalancer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckInterval == 0 {
		// Within the kube-apiserver's --shutdown-delay-duration (2 s), so
		// that a draining replica is out before it stops taking
		// connections.
		cfg.CheckInterval = time.Second
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	return &LoadBalancer{
		cfg: cfg,
		client: &http.Client{
			Timeout: cfg.CheckTimeout,
			// The check asks whether the replica serves, not who it is;
			// clients verify the certificate themselves end to end. The
			// connection is kept between checks: a TLS handshake twice a
			// second was most of an idle kube-apiserver's CPU.
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, IdleConnTimeout: 10 * time.Second},
		},
		frontends: map[string]*frontend{},
		checks:    checks{byKey: map[checkKey]*healthCheck{}},
	}
}

type backendState struct {
	Backend
	check *healthCheck // nil: unchecked, always healthy
}

func (b *backendState) healthy() bool { return b.check == nil || b.check.healthy.Load() }

type frontend struct {
	addr     string
	listener net.Listener   // TCP
	packets  net.PacketConn // UDP
	// backendNS is where backends are dialled; unchecked backends are
	// never probed (Frontend.Unchecked).
	backendNS string
	unchecked bool
	done      sync.WaitGroup

	mu       sync.Mutex
	backends []*backendState
	next     int
	conns    map[net.Conn]struct{}
	// allow is the sources admitted (nil: every one); clients are the
	// connections accepted, so that a narrower list cuts them too.
	allow   []netip.Prefix
	clients map[net.Conn]netip.Addr
}

// ErrNoHealthyBackend is what a client's connection meets when every replica
// is down: the connection is closed.
var ErrNoHealthyBackend = errors.New("loadbalancer: no healthy backend")

// Ensure makes frontend fe.Addr forward to its backends and admit its
// sources, listening if it does not yet.
func (lb *LoadBalancer) Ensure(fe Frontend) error {
	allow, err := ParseAllow(fe.Allow)
	if err != nil {
		return err
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	f, ok := lb.frontends[fe.key()]
	if !ok {
		f = &frontend{addr: fe.Addr, backendNS: fe.BackendNamespace, unchecked: fe.Unchecked, conns: map[net.Conn]struct{}{}, clients: map[net.Conn]netip.Addr{}}
		err := inNamespace(fe.Namespace, func() (err error) {
			if fe.udp() {
				f.packets, err = net.ListenPacket("udp", fe.Addr)
			} else {
				f.listener, err = net.Listen("tcp", fe.Addr)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("loadbalancer: listen %s: %w", fe.key(), err)
		}
		lb.frontends[fe.key()] = f
		f.done.Add(1)
		if fe.udp() {
			go lb.serveUDP(f)
		} else {
			go lb.serve(f)
		}
	}
	f.setAllow(allow)
	f.setBackends(fe.Backends, lb)
	return nil
}

// ParseAllow parses a frontend's admitted sources; nil admits every source.
func ParseAllow(cidrs []string) ([]netip.Prefix, error) {
	if cidrs == nil {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("loadbalancer: allowed source %q: %w", c, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// admits reports whether allow (nil: everyone) lets source in.
func admits(allow []netip.Prefix, source netip.Addr) bool {
	if allow == nil {
		return true
	}
	for _, p := range allow {
		if p.Contains(source.Unmap()) {
			return true
		}
	}
	return false
}

// setAllow changes the admitted sources and cuts the connections of
// clients no longer admitted: a removed network loses access at once, not
// when its clients next reconnect.
func (f *frontend) setAllow(allow []netip.Prefix) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.allow = allow
	for c, source := range f.clients {
		if !admits(allow, source) {
			reset(c)
		}
	}
}

// reset closes c with a TCP RST rather than an orderly FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// inNamespace runs fn in the named network namespace (empty: this
// process's own): the sockets it opens stay there.
func inNamespace(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	return netns.Do(ns, fn)
}

// dial connects to a backend, from the frontend's backend namespace.
func (f *frontend) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	return dialFrom(f.backendNS, network, addr, timeout)
}

// dialFrom connects to addr from network namespace ns (empty: this
// process's own).
func dialFrom(ns, network, addr string, timeout time.Duration) (c net.Conn, err error) {
	err = inNamespace(ns, func() error {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// Remove closes frontend addr (its key: "namespace/address" in a
// namespace) and every connection through it.
func (lb *LoadBalancer) Remove(addr string) {
	lb.mu.Lock()
	f, ok := lb.frontends[addr]
	delete(lb.frontends, addr)
	lb.mu.Unlock()
	if ok {
		f.close(lb)
	}
}

// Close closes every frontend.
func (lb *LoadBalancer) Close() {
	lb.mu.Lock()
	fs := lb.frontends
	lb.frontends = map[string]*frontend{}
	lb.mu.Unlock()
	for _, f := range fs {
		f.close(lb)
	}
}

// Healthy returns the addresses of the backends of frontend addr (its key) that passed
// their last check.
func (lb *LoadBalancer) Healthy(addr string) []string {
	lb.mu.Lock()
	f := lb.frontends[addr]
	lb.mu.Unlock()
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, b := range f.backends {
		if b.healthy() {
			out = append(out, b.Addr)
		}
	}
	return out
}

// setBackends makes the frontend forward to backends, sharing the health
// check of each with every frontend that has it.
func (f *frontend) setBackends(backends []Backend, lb *LoadBalancer) {
	var states []*backendState
	for _, b := range backends {
		s := &backendState{Backend: b}
		if !f.unchecked {
			s.check = lb.checks.acquire(lb, f.backendNS, b)
		}
		states = append(states, s)
	}
	f.mu.Lock()
	old := f.backends
	f.backends = states
	f.mu.Unlock()
	lb.checks.release(old)
}

func (f *frontend) close(lb *LoadBalancer) {
	if f.listener != nil {
		f.listener.Close()
	} else {
		f.packets.Close()
	}
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	backends := f.backends
	f.backends = nil
	f.mu.Unlock()
	f.done.Wait()
	lb.checks.release(backends)
}

func (lb *LoadBalancer) serve(f *frontend) {
	defer f.done.Done()
	for {
		c, err := f.listener.Accept()
		if err != nil {
			return
		}
		source := netip.Addr{}
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			source = ap.Addr()
		}
		f.mu.Lock()
		if !admits(f.allow, source) {
			f.mu.Unlock()
			lb.cfg.Logger.Debug("connection refused: source not authorized", "frontend", f.addr, "client", c.RemoteAddr())
			reset(c)
			continue
		}
		f.conns[c] = struct{}{}
		f.clients[c] = source
		f.mu.Unlock()
		go func() {
			defer func() {
				f.mu.Lock()
				delete(f.conns, c)
				delete(f.clients, c)
				f.mu.Unlock()
				c.Close()
			}()
			if err := lb.forward(f, c); err != nil {
				lb.cfg.Logger.Debug("connection", "frontend", f.addr, "client", c.RemoteAddr(), "err", err)
			}
		}()
	}
}

// pick returns the healthy backends in round-robin order.
func (f *frontend) pick() []Backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Backend
	n := len(f.backends)
	for i := range n {
		b := f.backends[(f.next+i)%n]
		if b.healthy() {
			out = append(out, b.Backend)
		}
	}
	f.next++
	return out
}

func (lb *LoadBalancer) forward(f *frontend, client net.Conn) error {
	var upstream net.Conn
	for _, b := range f.pick() {
		c, err := f.dial("tcp", b.Addr, lb.cfg.CheckTimeout)
		if err == nil {
			upstream = c
			break
		}
	}
	if upstream == nil {
		return ErrNoHealthyBackend
	}
	defer upstream.Close()
	f.mu.Lock()
	f.conns[upstream] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, upstream)
		f.mu.Unlock()
	}()
	errc := make(chan error, 2)
	pipe := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		errc <- err
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
	err := <-errc
	if e := <-errc; err == nil {
		err = e
	}
	return err
}
