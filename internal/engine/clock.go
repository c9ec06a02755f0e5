package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kubeyard/kubeyard/internal/store"
)

const clockKey = "meta/clock-offset"

// loadClock restores the clock offset an operator set earlier.
func (e *Engine) loadClock(ctx context.Context) error {
	var offset time.Duration
	_, err := e.store.Get(ctx, clockKey, &offset)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	e.cfg.Clock.Set(offset)
	return nil
}

// AdvanceClock moves the engine's clock forward by d and returns the new
// engine time. The offset is stored, so it survives a restart.
func (e *Engine) AdvanceClock(ctx context.Context, d time.Duration) (time.Time, error) {
	if d < 0 {
		return time.Time{}, fmt.Errorf("engine: the clock only moves forward")
	}
	offset := e.cfg.Clock.Advance(d)
	if err := e.store.Commit(ctx, store.Write{Key: clockKey, Value: offset, Revision: store.Any}); err != nil {
		return time.Time{}, err
	}
	return e.cfg.Clock.Now(), nil
}
