package engine

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/kubeyard/kubeyard/internal/logcollect"
	"github.com/kubeyard/kubeyard/internal/logging"
	"github.com/kubeyard/kubeyard/internal/store"
)

// followLogs collects the clusters' logs into the engine's Cloud Logging,
// every interval, as loggingConfig says (logging.go).
func (e *Engine) followLogs(ctx context.Context, every time.Duration) {
	follow(ctx, every, nil, func() { e.collectLogs(ctx) })
}

// logCursorKey is where a cluster's log cursor is stored, with the
// entries it covers.
func logCursorKey(uid string) string { return "logcursors/" + uid }

// logBatch bounds the entries of one write: one transaction, entries and
// cursor together, so that a crash never tells a line twice or not at
// all.
const logBatch = 60

func (e *Engine) collectLogs(ctx context.Context) {
	clusters, err := e.listClusters(ctx, "clusters/")
	if err != nil {
		return
	}
	live := map[string]bool{}
	for _, r := range clusters {
		live[logCursorKey(r.UID)] = true
		if r.Cluster.Status != "RUNNING" && r.Cluster.Status != "RECONCILING" {
			continue // nothing to read yet, or any more
		}
		if err := e.collectClusterLogs(ctx, r); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("cluster logs", "cluster", r.key(), "err", err)
		}
	}
	// The cursors of clusters that are gone.
	items, err := e.store.List(ctx, "logcursors/")
	if err != nil {
		return
	}
	for _, it := range items {
		if !live[it.Key] {
			_ = e.store.Commit(ctx, store.Write{Key: it.Key, Revision: store.Any})
		}
	}
}

// collectClusterLogs writes what the cluster's log files hold beyond its
// cursor, in batches, each with the cursor past it.
func (e *Engine) collectClusterLogs(ctx context.Context, r *ClusterRecord) error {
	e.logMu.Lock() // the follower's round and an update's
	defer e.logMu.Unlock()
	enabled := loggingOf(r.Cluster)
	key := logCursorKey(r.UID)
	var stored logcollect.Cursor
	_, err := e.store.Get(ctx, key, &stored)
	var prev *logcollect.Cursor
	switch {
	case err == nil:
		prev = &stored
	case !errors.Is(err, store.ErrNotFound):
		return err
	case len(enabled) == 0:
		return nil // never collected, nothing to collect
	}
	s := e.spec(r)
	sources, err := e.runtime.LogSources(ctx, s)
	if err != nil {
		return err
	}
	cur := logcollect.Start(prev, enabled, sources)
	events := slices.Contains(enabled, logcollect.System)
	if events && prev != nil && !slices.Contains(prev.Enabled, logcollect.System) {
		// Events from now on, not those of before.
		if _, cur.Events, err = e.runtime.Events(ctx, s, cur.Events, 0); err != nil {
			return err
		}
	}
	c := logcollect.Cluster{Project: r.Project, Location: r.Location, Name: r.Cluster.Name}
	write := func(entries []logging.Entry, next logcollect.Cursor) error {
		cursor := store.Write{Key: key, Value: next, Revision: store.Any}
		if err := e.logs.WriteWith(ctx, r.Project, []store.Write{cursor}, entries...); err != nil {
			return err
		}
		prev = &next
		return nil
	}
	for {
		entries, next := logcollect.Collect(c, sources, cur, logBatch, e.cfg.Clock.Now())
		if len(entries) > 0 || prev == nil || !sameCursor(next, *prev) {
			if err := write(entries, next); err != nil {
				return err
			}
		}
		cur = next
		if len(entries) < logBatch {
			break
		}
	}
	for events {
		evs, _, err := e.runtime.Events(ctx, s, cur.Events, logBatch)
		if err != nil || len(evs) == 0 {
			return err
		}
		entries := make([]logging.Entry, 0, len(evs))
		for i := range evs {
			entries = append(entries, logcollect.EventEntry(c, &evs[i]))
		}
		next := cur
		next.Events, _ = strconv.ParseUint(evs[len(evs)-1].ResourceVersion, 10, 64)
		if err := write(entries, next); err != nil {
			return err
		}
		cur = next
		events = len(evs) == logBatch
	}
	return nil
}

func sameCursor(a, b logcollect.Cursor) bool {
	if !slices.Equal(a.Enabled, b.Enabled) || a.Events != b.Events || len(a.Offsets) != len(b.Offsets) {
		return false
	}
	for k, v := range a.Offsets {
		if w, ok := b.Offsets[k]; !ok || w != v {
			return false
		}
	}
	return true
}
