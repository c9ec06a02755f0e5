package engine

import (
	"testing"
	"time"

	container "google.golang.org/api/container/v1"
)

func TestMaintenanceHold(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	exclusion := &container.MaintenancePolicy{Window: &container.MaintenanceWindow{MaintenanceExclusions: map[string]container.TimeWindow{
		"freeze": {StartTime: "2026-11-20T00:00:00Z", EndTime: "2026-11-23T00:00:00Z"},
	}}}
	daily := &container.MaintenancePolicy{Window: &container.MaintenanceWindow{DailyMaintenanceWindow: &container.DailyMaintenanceWindow{StartTime: "03:00"}}}
	weekend := &container.MaintenancePolicy{Window: &container.MaintenanceWindow{RecurringWindow: &container.RecurringTimeWindow{
		Window:     &container.TimeWindow{StartTime: "2026-01-03T22:00:00Z", EndTime: "2026-01-04T04:00:00Z"},
		Recurrence: "FREQ=WEEKLY;BYDAY=SA",
	}}}
	tests := []struct {
		name   string
		policy *container.MaintenancePolicy
		now    string
		held   bool
	}{
		{"no policy", nil, "2026-11-22T12:00:00Z", false},
		{"inside an exclusion", exclusion, "2026-11-22T12:00:00Z", true},
		{"after the exclusion", exclusion, "2026-11-23T00:00:00Z", false},
		{"inside the daily window", daily, "2026-11-22T05:59:00Z", false},
		{"outside the daily window", daily, "2026-11-22T07:00:00Z", true},
		{"Saturday night, inside", weekend, "2026-11-22T01:00:00Z", false}, // Sunday 01:00, opened Saturday 22:00
		{"Sunday noon, outside", weekend, "2026-11-22T12:00:00Z", true},
		{"before the window's first day", weekend, "2025-12-28T01:00:00Z", true},
	}
	for _, tt := range tests {
		if got := maintenanceHold(tt.policy, at(tt.now)); (got != "") != tt.held {
			t.Errorf("%s: hold %q, want held %v", tt.name, got, tt.held)
		}
	}
}

func TestValidatePolicy(t *testing.T) {
	bad := []*container.MaintenancePolicy{
		{Window: &container.MaintenanceWindow{DailyMaintenanceWindow: &container.DailyMaintenanceWindow{StartTime: "25:00"}}},
		{Window: &container.MaintenanceWindow{RecurringWindow: &container.RecurringTimeWindow{Window: &container.TimeWindow{StartTime: "2026-01-03T22:00:00Z", EndTime: "2026-01-04T04:00:00Z"}, Recurrence: "FREQ=MONTHLY"}}},
		{Window: &container.MaintenanceWindow{MaintenanceExclusions: map[string]container.TimeWindow{"x": {StartTime: "2026-01-02T00:00:00Z", EndTime: "2026-01-01T00:00:00Z"}}}},
		{Window: &container.MaintenanceWindow{MaintenanceExclusions: map[string]container.TimeWindow{"x": {StartTime: "2026-01-01T00:00:00Z", EndTime: "2026-01-02T00:00:00Z", MaintenanceExclusionOptions: &container.MaintenanceExclusionOptions{Scope: "NO_UPGRADES"}}}}},
	}
	for i, p := range bad {
		if err := validatePolicy("maintenancePolicy", p); err == nil {
			t.Errorf("policy %d was accepted", i)
		}
	}
}
