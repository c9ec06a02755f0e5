// Package pace paces a control-plane component's Go runtime by how busy
// it is: its garbage collector and its processors.
//
// An idle component collects often (a low GOGC), so that an idle cluster
// holds little memory; a busy one collects seldom, so that its CPU goes to
// the work: with GOGC=50 a kube-apiserver scheduling 10,000 pods spent
// about 30% of its CPU in the collector, and the scheduler about 20%.
//
// An idle component runs on one processor (GOMAXPROCS): its work is timers
// and a few requests, and with two processors each wakeup also wakes the
// other to look for work to steal. Five idle clusters on one processor
// each: their kube-apiservers switched context 36% less often and spent
// 18% less CPU, their controller-managers 46% and 32% less. A busy one has
// every processor it started with.
package pace

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

// Config says how to pace; zero fields take the defaults.
type Config struct {
	// IdlePercent and BusyPercent are the GOGC values while idle and busy
	// (default 50 and 200).
	IdlePercent, BusyPercent int
	// IdleProcs is GOMAXPROCS while idle, from the end of the warm-up (0:
	// left alone); busy, the component has the processors it started with.
	IdleProcs int
	// BusyRate is the allocation rate, bytes a second, from which the
	// component counts as busy (default 16 MiB/s; an idle kube-apiserver
	// allocates about 0.5).
	BusyRate float64
	// BusyCPU is the CPU use, in cores, from which the component counts as
	// busy however little it allocates (default 0.25; an idle
	// kube-apiserver uses about 0.01): kube-controller-manager creating
	// 10,000 pods allocates under BusyRate, and one processor slowed it.
	BusyCPU float64
	// Calm is how long the load stays under both before the component
	// counts as idle again (default 15 s).
	Calm time.Duration
	// Warmup is how long after the process starts its rate is not
	// looked at (default 20 s): a component's start allocates briskly
	// for a few seconds, and a heap grown under the busy pace stays
	// bigger (fragmented) after, for an idle cluster's whole life.
	Warmup time.Duration
	// Every is how often the rate is read (default 1 s).
	Every time.Duration
	// SetGCPercent, SetMaxProcs, Release, Allocated and CPUTime are the
	// runtime's and the kernel's (replaced in tests): Release hands the
	// heap a busy spell grew back to the system at once, rather than over
	// minutes; CPUTime is the process's CPU time so far.
	SetGCPercent func(int) int
	SetMaxProcs  func(int) int
	Release      func()
	Allocated    func() uint64
	CPUTime      func() time.Duration
}

func (c *Config) defaults() {
	if c.IdlePercent == 0 {
		c.IdlePercent = 50
	}
	if c.BusyPercent == 0 {
		c.BusyPercent = 200
	}
	if c.BusyRate == 0 {
		c.BusyRate = 16 << 20
	}
	if c.BusyCPU == 0 {
		c.BusyCPU = 0.25
	}
	if c.Calm == 0 {
		c.Calm = 15 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 20 * time.Second
	}
	if c.Every == 0 {
		c.Every = time.Second
	}
	if c.SetGCPercent == nil {
		c.SetGCPercent = debug.SetGCPercent
	}
	if c.SetMaxProcs == nil {
		c.SetMaxProcs = runtime.GOMAXPROCS
	}
	if c.Release == nil {
		c.Release = debug.FreeOSMemory
	}
	if c.Allocated == nil {
		c.Allocated = allocated
	}
	if c.CPUTime == nil {
		c.CPUTime = cpuTime
	}
}

// cpuTime is the CPU time the process has used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// allocated is the bytes the process has allocated on the heap so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Pacer decides GOGC and GOMAXPROCS from allocation rates.
type Pacer struct {
	cfg       Config
	busy      bool
	calmSince time.Time // when the rate last fell under BusyRate while busy
	busyProcs int       // GOMAXPROCS at the start
}

// New returns a pacer that starts idle: it sets the idle GOGC at once, and
// leaves the processors to the start (see Run).
func New(cfg Config) *Pacer {
	cfg.defaults()
	cfg.SetGCPercent(cfg.IdlePercent)
	return &Pacer{cfg: cfg, busyProcs: cfg.SetMaxProcs(0)}
}

// procs sets GOMAXPROCS to n, unless pacing leaves it alone.
func (p *Pacer) procs(n int) {
	if p.cfg.IdleProcs > 0 {
		p.cfg.SetMaxProcs(n)
	}
}

// Load is what a component did over the last interval.
type Load struct {
	Alloc float64 // bytes allocated a second
	CPU   float64 // cores used
}

// Observe takes the load at now and sets GOGC and GOMAXPROCS when the
// component turns busy (at once) or idle (after Calm under both
// thresholds); it reports whether it is busy.
func (p *Pacer) Observe(l Load, now time.Time) bool {
	switch {
	case l.Alloc >= p.cfg.BusyRate || l.CPU >= p.cfg.BusyCPU:
		p.calmSince = time.Time{}
		if !p.busy {
			p.busy = true
			p.cfg.SetGCPercent(p.cfg.BusyPercent)
			p.procs(p.busyProcs)
		}
	case p.busy && p.calmSince.IsZero():
		p.calmSince = now
	case p.busy && now.Sub(p.calmSince) >= p.cfg.Calm:
		p.busy = false
		p.calmSince = time.Time{}
		p.cfg.SetGCPercent(p.cfg.IdlePercent)
		p.procs(p.cfg.IdleProcs)
		p.cfg.Release()
	}
	return p.busy
}

// Run paces until ctx ends, reading the load every
// Config.Every once Config.Warmup is over; then, first, it hands back
// what the start left (some 20 MiB of an idle zonal cluster's PSS, which
// the runtime's own scavenger keeps) and goes down to the idle
// processors: the start itself has them all, a cluster's create waits
// on it.
func (p *Pacer) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(p.cfg.Warmup):
	}
	p.cfg.Release()
	p.procs(p.cfg.IdleProcs)
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	last, lastCPU, lastAt := p.cfg.Allocated(), p.cfg.CPUTime(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a, cpu := p.cfg.Allocated(), p.cfg.CPUTime()
			if d := now.Sub(lastAt).Seconds(); d > 0 {
				p.Observe(Load{Alloc: float64(a-last) / d, CPU: (cpu - lastCPU).Seconds() / d}, now)
			}
			last, lastCPU, lastAt = a, cpu, now
		}
	}
}

// Env is the variable that asks a component process for pacing:
// "IDLE,BUSY,PROCS", the GOGC values while idle and busy and GOMAXPROCS
// while idle (0: left alone), "50,200,1" say. Components are data: the
// variable is in the process's spec, and the multi-call dispatcher acts on
// it.
const Env = "KUBEYARD_PACE"

// ParseEnv reads Env's value into a Config.
func ParseEnv(v string) (Config, error) {
	var c Config
	if _, err := fmt.Sscanf(v, "%d,%d,%d", &c.IdlePercent, &c.BusyPercent, &c.IdleProcs); err != nil || c.IdlePercent <= 0 || c.BusyPercent < c.IdlePercent || c.IdleProcs < 0 {
		return Config{}, fmt.Errorf("pace: %s=%q: want IDLE,BUSY,PROCS: GOGC values, IDLE <= BUSY, and GOMAXPROCS while idle (0: left alone)", Env, v)
	}
	return c, nil
}
