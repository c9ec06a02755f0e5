package engine

import (
	container "google.golang.org/api/container/v1"
	"slices"
	"testing"
)

func TestParseLocation(t *testing.T) {
	cases := []struct {
		in       string
		ok       bool
		regional bool
		zones    []string
	}{
		{"us-central1-a", true, false, []string{"us-central1-a"}},
		{"us-central1", true, true, []string{"us-central1-a", "us-central1-b", "us-central1-c"}},
		{"europe-west1-b", true, false, []string{"europe-west1-b"}},
		{"us-central1-z", false, false, nil},
		{"mars-central1", false, false, nil},
		{"", false, false, nil},
		{"-", false, false, nil},
	}
	for _, tc := range cases {
		l, ok := ParseLocation(tc.in)
		if ok != tc.ok {
			t.Errorf("%q: ok=%v", tc.in, ok)
			continue
		}
		if ok && (l.Regional() != tc.regional || !slices.Equal(l.Zones(), tc.zones)) {
			t.Errorf("%q: regional=%v zones=%v", tc.in, l.Regional(), l.Zones())
		}
	}
}

func TestPodRangeBits(t *testing.T) {
	for pods, bits := range map[int64]int{0: 8, 110: 8, 64: 7, 32: 6, 8: 4} {
		var c *maxPods
		if pods > 0 {
			c = &maxPods{MaxPodsPerNode: pods}
		}
		if got := podRangeBits(c); got != bits {
			t.Errorf("%d pods: %d host bits, want %d", pods, got, bits)
		}
	}
}

type maxPods = container.MaxPodsConstraint
