package engine

import (
	"strings"
	"testing"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/status"
)

func TestCARotationAllowed(t *testing.T) {
	record := func(version, op string, rot *cluster.CARotation) *ClusterRecord {
		return &ClusterRecord{Project: "p", Location: "us-central1-a", Operation: op, CARotation: rot,
			Cluster: &container.Cluster{Name: "demo", Status: "RUNNING", CurrentMasterVersion: version}}
	}
	tests := []struct {
		name string
		r    *ClusterRecord
		want string // in the message; "" for allowed
	}{
		{"current version", record(Version, "", nil), ""},
		{"below the minimum", record("1.36.9-kubeyard.0", "", nil), "needs " + MinCARotationVersion},
		{"an older patch", record("1.37.1", "", nil), "needs " + MinCARotationVersion},
		{"another operation", record(Version, "operation-1", nil), "incompatible operation"},
		{"rotating already", record(Version, "", &cluster.CARotation{Phase: cluster.CASignNew}), "already rotating its CA"},
	}
	for _, tt := range tests {
		err := caRotationAllowed(tt.r)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		apiErr, ok := err.(*status.Error)
		if !ok || apiErr.Code != status.FailedPrecondition || !strings.Contains(apiErr.Message, tt.want) {
			t.Errorf("%s: want FAILED_PRECONDITION with %q, got %v", tt.name, tt.want, err)
		}
	}
}

func TestVersionBefore(t *testing.T) {
	for _, c := range []struct {
		v, min string
		want   bool
	}{
		{"1.37.2-kubeyard.0", "1.37.2", false},
		{"v1.37.3", "1.37.2", false},
		{"1.37.1", "1.37.2", true},
		{"1.9.0", "1.37.2", true},
		{"2.0.0", "1.37.2", false},
	} {
		if got := versionBefore(c.v, c.min); got != c.want {
			t.Errorf("versionBefore(%q, %q) = %v", c.v, c.min, got)
		}
	}
}
