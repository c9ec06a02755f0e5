package kubelet

import (
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/podruntime"
)

// The kubelet's restart back-off: the first restart at once, then 10 s
// doubling up to 5 minutes; a container that ran 10 minutes starts over.
func TestRestartDelay(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		attempt int
		ran     time.Duration
		want    time.Duration
	}{
		{0, time.Second, 0},
		{1, time.Second, 10 * time.Second},
		{2, time.Second, 20 * time.Second},
		{3, time.Second, 40 * time.Second},
		{5, time.Second, 160 * time.Second},
		{6, time.Second, 5 * time.Minute},
		{20, time.Second, 5 * time.Minute},
		{20, 11 * time.Minute, 0},
	} {
		c := podruntime.Container{Attempt: tc.attempt, StartedAt: start, FinishedAt: start.Add(tc.ran)}
		if got := restartDelay(c); got != tc.want {
			t.Errorf("after attempt %d that ran %s: %s, want %s", tc.attempt, tc.ran, got, tc.want)
		}
	}
}
