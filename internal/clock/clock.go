// Package clock is the engine's notion of time: the real clock shifted by an
// offset that an operator can advance, so that "seven days later" can be
// exercised in seconds. Every reconciler takes a clock.Clock instead of
// calling time.Now. What the kube components judge (certificate validity,
// node heartbeats) stays on the real clock: they read it themselves.
package clock

import (
	"sync"
	"time"

	k8sclock "k8s.io/utils/clock"
)

// Clock is the interface reconcilers use.
type Clock = k8sclock.PassiveClock

// Offset is a clock running at real speed from a movable starting point. The
// zero value is the real clock.
type Offset struct {
	mu     sync.RWMutex
	offset time.Duration
}

// Now returns real time plus the offset.
func (c *Offset) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return time.Now().Add(c.offset)
}

// Since returns the engine time elapsed since t.
func (c *Offset) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Set replaces the offset (used when loading it from the store).
func (c *Offset) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
}

// Advance moves the clock forward by d and returns the new offset.
func (c *Offset) Advance(d time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	return c.offset
}

// OffsetValue returns the current offset.
func (c *Offset) OffsetValue() time.Duration {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.offset
}
