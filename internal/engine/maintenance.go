package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/status"
)

// SetMaintenancePolicy replaces the cluster's maintenance policy: a daily
// or recurring window (automatic node recreation runs only inside it) and
// exclusions (none runs inside one). A resourceVersion, when given, must
// match the current one.
func (e *Engine) SetMaintenancePolicy(ctx context.Context, project, location, name string, p *container.MaintenancePolicy) (*container.Operation, error) {
	if err := validatePolicy("maintenancePolicy", p); err != nil {
		return nil, err
	}
	r, rev, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if r.Operation != "" {
		return nil, busyError(project, location, r.Operation)
	}
	if cur := r.Cluster.MaintenancePolicy; p != nil && p.ResourceVersion != "" && cur != nil && p.ResourceVersion != cur.ResourceVersion {
		return nil, status.Errorf(status.FailedPrecondition, "The maintenance policy changed meanwhile (resourceVersion %s, not %s); read it again.", cur.ResourceVersion, p.ResourceVersion)
	}
	r.Cluster.MaintenancePolicy = reportedPolicy(p)
	return e.startOperation(ctx, r, rev, e.newOperation(r, OpSetMaintenancePolicy, "clusters/"+name))
}

// dailyWindow is how long a daily maintenance window lasts, as GKE
// reports it.
const dailyWindow = 4 * time.Hour

// reportedPolicy is the policy as GKE reports it: always there, with a new
// resourceVersion and the daily window's duration.
func reportedPolicy(p *container.MaintenancePolicy) *container.MaintenancePolicy {
	if p == nil {
		p = &container.MaintenancePolicy{}
	}
	p.ResourceVersion = randomHex(4)
	if p.Window != nil && p.Window.DailyMaintenanceWindow != nil {
		p.Window.DailyMaintenanceWindow.Duration = "PT4H0M0S"
	}
	return p
}

// validatePolicy checks a maintenance policy, the request's field (a
// create's cluster.maintenancePolicy, or maintenancePolicy).
func validatePolicy(field string, p *container.MaintenancePolicy) error {
	if p == nil || p.Window == nil {
		return nil
	}
	policyField := field + ".window"
	w := p.Window
	if d := w.DailyMaintenanceWindow; d != nil {
		if _, err := time.Parse("15:04", d.StartTime); err != nil {
			return status.Invalid(policyField+".dailyMaintenanceWindow.startTime", "Invalid start time %q: HH:MM (UTC) is expected.", d.StartTime)
		}
	}
	if rw := w.RecurringWindow; rw != nil {
		if _, _, err := timeWindow(rw.Window); err != nil {
			return status.Invalid(policyField+".recurringWindow.window", "%v", err)
		}
		if _, err := parseRecurrence(rw.Recurrence); err != nil {
			return status.Invalid(policyField+".recurringWindow.recurrence", "%v", err)
		}
	}
	for name, x := range w.MaintenanceExclusions {
		field := policyField + ".maintenanceExclusions." + name
		if x.MaintenanceExclusionOptions != nil {
			return status.Invalid(field+".maintenanceExclusionOptions", "Exclusion scopes are not supported by kubeyard yet: an exclusion holds back every recreation.")
		}
		if _, _, err := timeWindow(&x); err != nil {
			return status.Invalid(field, "%v", err)
		}
	}
	return nil
}

func timeWindow(w *container.TimeWindow) (time.Time, time.Time, error) {
	if w == nil {
		return time.Time{}, time.Time{}, fmt.Errorf("a start and an end time are required")
	}
	start, err := time.Parse(time.RFC3339, w.StartTime)
	if err != nil {
		return start, start, fmt.Errorf("invalid start time %q: RFC 3339 is expected", w.StartTime)
	}
	end, err := time.Parse(time.RFC3339, w.EndTime)
	if err != nil {
		return start, end, fmt.Errorf("invalid end time %q: RFC 3339 is expected", w.EndTime)
	}
	if !end.After(start) {
		return start, end, fmt.Errorf("the end time %s is not after the start time %s", w.EndTime, w.StartTime)
	}
	return start, end, nil
}

// parseRecurrence understands the RFC 5545 rules GKE documents for
// maintenance windows: FREQ=DAILY, and FREQ=WEEKLY;BYDAY=... It returns
// the weekdays the window recurs on.
func parseRecurrence(rule string) ([]time.Weekday, error) {
	days := map[string]time.Weekday{"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday, "TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday}
	parts := map[string]string{}
	for _, kv := range strings.Split(rule, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("invalid recurrence %q", rule)
		}
		parts[k] = v
	}
	switch {
	case parts["FREQ"] == "DAILY" && len(parts) == 1:
		return []time.Weekday{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}, nil
	case parts["FREQ"] == "WEEKLY" && parts["BYDAY"] != "" && len(parts) == 2:
		var out []time.Weekday
		for _, d := range strings.Split(parts["BYDAY"], ",") {
			wd, ok := days[d]
			if !ok {
				return nil, fmt.Errorf("invalid day %q in recurrence %q", d, rule)
			}
			out = append(out, wd)
		}
		return out, nil
	}
	return nil, fmt.Errorf("recurrence %q is not supported: FREQ=DAILY or FREQ=WEEKLY;BYDAY=... are", rule)
}

// maintenanceHold says why automatic maintenance may not run at now, or "".
func maintenanceHold(p *container.MaintenancePolicy, now time.Time) string {
	if p == nil || p.Window == nil {
		return ""
	}
	w := p.Window
	for name, x := range w.MaintenanceExclusions {
		if start, end, err := timeWindow(&x); err == nil && !now.Before(start) && now.Before(end) {
			return "maintenance exclusion " + name
		}
	}
	if d := w.DailyMaintenanceWindow; d != nil {
		at, _ := time.Parse("15:04", d.StartTime)
		if !inRecurring(now, at, dailyWindow, nil) {
			return "outside the daily maintenance window"
		}
	}
	if rw := w.RecurringWindow; rw != nil {
		start, end, _ := timeWindow(rw.Window)
		days, _ := parseRecurrence(rw.Recurrence)
		if now.Before(start) || !inRecurring(now, start, end.Sub(start), days) {
			return "outside the maintenance window"
		}
	}
	return ""
}

// inRecurring says whether now falls in a window of length d that starts
// at the clock time of at (UTC) on the given weekdays (every day if nil).
func inRecurring(now, at time.Time, d time.Duration, days []time.Weekday) bool {
	now, at = now.UTC(), at.UTC()
	for back := range 8 {
		day := now.AddDate(0, 0, -back)
		if days != nil && !slices.Contains(days, day.Weekday()) {
			continue
		}
		open := time.Date(day.Year(), day.Month(), day.Day(), at.Hour(), at.Minute(), at.Second(), 0, time.UTC)
		if !now.Before(open) && now.Before(open.Add(d)) {
			return true
		}
	}
	return false
}
