package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if err := Until(context.Background(), func(context.Context) error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("err=%v after %d checks", err, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	err := Until(ctx, func(context.Context) error { return errors.New("still broken") })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still broken") {
		t.Fatalf("timeout error %v does not carry the last check's error", err)
	}
}
