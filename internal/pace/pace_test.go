package pace

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	var set, procs []int
	released := 0
	p := New(Config{Calm: 30 * time.Second, IdleProcs: 1, SetGCPercent: func(v int) int { set = append(set, v); return 0 },
		SetMaxProcs: func(v int) int {
			if v > 0 {
				procs = append(procs, v)
			}
			return 4 // the processors at the start
		},
		Release: func() { released++ }, Allocated: func() uint64 { return 0 }})
	start := time.Unix(0, 0)
	steps := []struct {
		at   time.Duration
		load Load
		busy bool
	}{
		{0, Load{1 << 20, 0.01}, false},              // idle
		{1 * time.Second, Load{64 << 20, 0.5}, true}, // busy at once
		{2 * time.Second, Load{1 << 20, 0.01}, true}, // calm for now
		{20 * time.Second, Load{1 << 20, 0.01}, true},
		{21 * time.Second, Load{32 << 20, 0.01}, true}, // busy again: the calm starts over
		{22 * time.Second, Load{0, 0.3}, true},         // and again, by its CPU alone
		{23 * time.Second, Load{}, true},
		{52 * time.Second, Load{}, true},
		{53 * time.Second, Load{}, false}, // 30 s calm
		{54 * time.Second, Load{}, false},
	}
	for _, s := range steps {
		if got := p.Observe(s.load, start.Add(s.at)); got != s.busy {
			t.Errorf("at %v, load %+v: busy %v, want %v", s.at, s.load, got, s.busy)
		}
	}
	if want := []int{50, 200, 50}; len(set) != len(want) || set[0] != 50 || set[1] != 200 || set[2] != 50 {
		t.Errorf("GOGC set to %v, want %v", set, want)
	}
	if released != 1 {
		t.Errorf("the heap was released %d times, want once, when idle again", released)
	}
	// Busy with every processor it started with, idle on one; the start
	// is left alone (Run goes down to one after the warm-up).
	if want := []int{4, 1}; len(procs) != 2 || procs[0] != want[0] || procs[1] != want[1] {
		t.Errorf("GOMAXPROCS set to %v, want %v", procs, want)
	}
}

// TestRunReadsTheRate: Run turns busy on a process's real allocations.
func TestRunReadsTheRate(t *testing.T) {
	var mu sync.Mutex
	var set, procs []int
	released := 0
	p := New(Config{Every: 20 * time.Millisecond, Warmup: 50 * time.Millisecond, IdleProcs: 1,
		SetGCPercent: func(v int) int { mu.Lock(); set = append(set, v); mu.Unlock(); return 0 },
		SetMaxProcs: func(v int) int {
			mu.Lock()
			defer mu.Unlock()
			if v > 0 {
				procs = append(procs, v)
			}
			return 2
		},
		Release: func() { mu.Lock(); released++; mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	var sink [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		sink = append(sink, make([]byte, 1<<20)) // 1 MiB a millisecond
		if len(sink) > 64 {
			sink = sink[:0]
		}
		time.Sleep(time.Millisecond)
		mu.Lock()
		n := len(set)
		mu.Unlock()
		if n >= 2 {
			break
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(set) < 2 || set[1] != 200 {
		t.Fatalf("GOGC set to %v while allocating a GiB a second", set)
	}
	if released != 1 {
		t.Errorf("released %d times, want once after the warm-up", released)
	}
	if len(procs) < 2 || procs[0] != 1 || procs[1] != 2 {
		t.Errorf("GOMAXPROCS set to %v: want one processor after the warm-up, then the two it started with", procs)
	}
}

func TestParseEnv(t *testing.T) {
	if c, err := ParseEnv("50,200,1"); err != nil || c.IdlePercent != 50 || c.BusyPercent != 200 || c.IdleProcs != 1 {
		t.Errorf("50,200,1: %+v %v", c, err)
	}
	for _, bad := range []string{"", "50", "50,200", "200,50,1", "0,100,1", "50,200,-1", "x,y,z"} {
		if _, err := ParseEnv(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRunReadsTheCPU: Run turns busy on a process's CPU use alone, with
// nothing allocated.
func TestRunReadsTheCPU(t *testing.T) {
	var mu sync.Mutex
	var set []int
	began := time.Now()
	p := New(Config{Every: 20 * time.Millisecond, Warmup: 20 * time.Millisecond,
		SetGCPercent: func(v int) int { mu.Lock(); set = append(set, v); mu.Unlock(); return 0 },
		SetMaxProcs:  func(int) int { return 2 },
		Release:      func() {},
		Allocated:    func() uint64 { return 0 },
		CPUTime:      func() time.Duration { return time.Since(began) / 2 }, // half a core
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go p.Run(ctx)
	for ctx.Err() == nil {
		mu.Lock()
		n := len(set)
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(set) < 2 || set[1] != 200 {
		t.Fatalf("GOGC set to %v while using half a core", set)
	}
}
