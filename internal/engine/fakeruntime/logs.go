package fakeruntime

import (
	"context"
	"slices"

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
