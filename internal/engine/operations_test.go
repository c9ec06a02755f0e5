package engine

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/kubeyard/kubeyard/internal/status"
)

// A panic inside an operation fails that operation with INTERNAL; the
// engine goes on.
func TestOperationPanicIsAnError(t *testing.T) {
	err := recovered(slog.New(slog.DiscardHandler), "op-1", func() error { panic("boom") })
	var apiErr *status.Error
	if !errors.As(err, &apiErr) || apiErr.Code != status.Internal || !strings.Contains(apiErr.Message, "boom") {
		t.Fatalf("got %v, want INTERNAL naming the panic", err)
	}
	if err := recovered(slog.New(slog.DiscardHandler), "op-2", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}
