package e2e

import (
	"strings"
	"syscall"
	"testing"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestClockAdvance: `kubeyard clock advance` moves the engine clock forward,
// refuses a bad duration, and the offset survives an engine restart.
func TestClockAdvance(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	clock := func(args ...string) (string, error) {
		return e.Kubeyard(append([]string{"clock"}, args...)...)
	}
	if out, err := clock("advance", "168h"); err != nil || !strings.Contains(out, `"offset":"168h0m0s"`) {
		t.Fatalf("advance 168h: %v %s", err, out)
	}
	for _, bad := range []string{"0s", "soon"} {
		if out, err := clock("advance", bad); err == nil || !strings.Contains(out, "INVALID_ARGUMENT") {
			t.Fatalf("advance %s: %v %s", bad, err, out)
		}
	}
	if err := e.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e.Restart()
	if out, err := clock("show"); err != nil || !strings.Contains(out, `"offset":"168h0m0s"`) {
		t.Fatalf("after restart: %v %s", err, out)
	}
}
