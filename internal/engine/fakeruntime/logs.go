package fakeruntime

import (
	"context"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/logcollect"
)

// SetLogSources gives cluster name log files.
func (r *Runtime) SetLogSources(name string, sources []logcollect.Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logSources == nil {
		r.logSources = map[string][]logcollect.Source{}
	}
	r.logSources[name] = slices.Clone(sources)
}

func (r *Runtime) LogSources(ctx context.Context, s cluster.Spec) ([]logcollect.Source, error) {
	if err := r.enter(ctx, "LogSources", s); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logSources[s.Name]), nil
}

// SetEvents gives cluster name Kubernetes events (resourceVersions that
// grow, as kube-apiserver's).
func (r *Runtime) SetEvents(name string, events []corev1.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string][]corev1.Event{}
	}
	r.events[name] = slices.Clone(events)
}

func (r *Runtime) Events(ctx context.Context, s cluster.Spec, after uint64, limit int) ([]corev1.Event, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []corev1.Event
	var latest uint64
	for _, ev := range r.events[s.Name] {
		rv, _ := strconv.ParseUint(ev.ResourceVersion, 10, 64)
		latest = max(latest, rv)
		if rv > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, latest, nil
}
