// Package poll waits for a condition: it calls a check until it succeeds or
// the context ends, and reports the check's last error with the deadline,
// so that a timeout says what was still wrong.
package poll

import (
	"context"
	"fmt"
	"time"
)

// Interval is how often Until checks.
const Interval = 100 * time.Millisecond

// Until calls check every Interval until it returns nil or ctx ends.
func Until(ctx context.Context, check func(context.Context) error) error {
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(Interval):
		}
	}
}
