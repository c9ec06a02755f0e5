package loadbalancer

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// udpIdle is how long a UDP flow lasts without an answer from its backend.
const udpIdle = 30 * time.Second

// serveUDP relays a UDP frontend's datagrams. Each client address is a
// flow: a socket of its own to one backend, picked when the flow begins,
// that carries the backend's answers back to the client, until udpIdle
// passes without one. Datagrams from sources not admitted are dropped.
func (lb *LoadBalancer) serveUDP(f *frontend) {
	defer f.done.Done()
	var mu sync.Mutex
	flows := map[string]net.Conn{}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := f.packets.ReadFrom(buf)
		if err != nil {
			return // closed: close() ends the flows with the frontend's conns
		}
		source := netip.Addr{}
		if ap, err := netip.ParseAddrPort(from.String()); err == nil {
			source = ap.Addr()
		}
		f.mu.Lock()
		admitted := admits(f.allow, source)
		f.mu.Unlock()
		if !admitted {
			continue
		}
		mu.Lock()
		flow := flows[from.String()]
		mu.Unlock()
		if flow == nil {
			if flow = lb.startFlow(f, from, func() { mu.Lock(); delete(flows, from.String()); mu.Unlock() }); flow == nil {
				continue
			}
			mu.Lock()
			flows[from.String()] = flow
			mu.Unlock()
		}
		if _, err := flow.Write(buf[:n]); err != nil {
			lb.cfg.Logger.Debug("udp", "frontend", f.addr, "client", from, "err", err)
		}
	}
}

// startFlow opens a flow from client to a healthy backend (nil: none
// answers), relaying its answers until it is idle; ended runs as it ends.
func (lb *LoadBalancer) startFlow(f *frontend, client net.Addr, ended func()) net.Conn {
	var upstream net.Conn
	for _, b := range f.pick() {
		c, err := f.dial("udp", b.Addr, lb.cfg.CheckTimeout)
		if err == nil {
			upstream = c
			break
		}
	}
	if upstream == nil {
		return nil
	}
	f.mu.Lock()
	f.conns[upstream] = struct{}{}
	f.mu.Unlock()
	go func() {
		defer func() {
			f.mu.Lock()
			delete(f.conns, upstream)
			f.mu.Unlock()
			upstream.Close()
			ended()
		}()
		buf := make([]byte, 64<<10)
		for {
			upstream.SetReadDeadline(time.Now().Add(udpIdle))
			n, err := upstream.Read(buf)
			if err != nil {
				return
			}
			if _, err := f.packets.WriteTo(buf[:n], client); err != nil {
				return
			}
		}
	}()
	return upstream
}
