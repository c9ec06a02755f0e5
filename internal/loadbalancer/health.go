package loadbalancer

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// checkKey names a backend as its health check sees it: where it is dialled
// from, its address and its readiness URL.
type checkKey struct{ ns, addr, readyURL string }

// healthCheck probes one backend every CheckInterval for as long as a
// frontend has it. A cluster's endpoints (public, private, the VPC's
// internal one) share their kube-apiservers' checks: each replica is asked
// for /readyz once an interval, not once per frontend.
type healthCheck struct {
	healthy atomic.Bool
	checked chan struct{} // closed once the first probe has answered
	cancel  context.CancelFunc
	refs    int // frontends holding it; guarded by checks.mu
}

// checks are the load balancer's health checks, by backend.
type checks struct {
	mu    sync.Mutex
	byKey map[checkKey]*healthCheck
}

// acquire returns the check of backend b dialled from ns, starting it if no
// frontend has it yet. It returns once the backend has been probed, so that
// a new frontend forwards at once rather than an interval later.
func (cs *checks) acquire(lb *LoadBalancer, ns string, b Backend) *healthCheck {
	key := checkKey{ns, b.Addr, b.ReadyURL}
	cs.mu.Lock()
	hc := cs.byKey[key]
	if hc == nil {
		ctx, cancel := context.WithCancel(context.Background())
		hc = &healthCheck{checked: make(chan struct{}), cancel: cancel}
		cs.byKey[key] = hc
		go lb.runCheck(ctx, hc, ns, b)
	}
	hc.refs++
	cs.mu.Unlock()
	<-hc.checked
	return hc
}

// release drops the frontend's hold on its backends' checks; a check no
// frontend holds stops.
func (cs *checks) release(backends []*backendState) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, b := range backends {
		if b.check == nil {
			continue
		}
		if b.check.refs--; b.check.refs == 0 {
			b.check.cancel()
			for k, hc := range cs.byKey {
				if hc == b.check {
					delete(cs.byKey, k)
				}
			}
		}
	}
}

func (lb *LoadBalancer) runCheck(ctx context.Context, hc *healthCheck, ns string, b Backend) {
	hc.healthy.Store(lb.probe(ctx, ns, b))
	close(hc.checked)
	t := time.NewTicker(lb.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok := lb.probe(ctx, ns, b)
		if was := hc.healthy.Swap(ok); was != ok && ctx.Err() == nil {
			lb.cfg.Logger.Info("backend health changed", "backend", b.Addr, "healthy", ok)
		}
	}
}

// probe runs the two health checks: a TCP connect from ns, then /readyz.
func (lb *LoadBalancer) probe(ctx context.Context, ns string, b Backend) bool {
	conn, err := dialFrom(ns, "tcp", b.Addr, lb.cfg.CheckTimeout)
	if err != nil {
		return false
	}
	conn.Close()
	if b.ReadyURL == "" {
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.ReadyURL, nil)
	if err != nil {
		return false
	}
	resp, err := lb.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
