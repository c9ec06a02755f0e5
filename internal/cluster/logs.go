package cluster

import (
	"context"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubeyard/kubeyard/internal/logcollect"
)

// LogSources are the cluster's log files, as its logging agent reads
// them: every container's (in the kubelet's layout under each node's
// folder: pods/logs/<namespace>_<pod>_<uid>/<container>/<attempt>.log)
// and every control-plane replica's kube-apiserver, kube-scheduler and
// kube-controller-manager.
func (r *Runtime) LogSources(ctx context.Context, s Spec) ([]logcollect.Source, error) {
	var out []logcollect.Source
	key := func(path string) string {
		rel, err := filepath.Rel(s.Dir, path)
		if err != nil {
			return path
		}
		return rel
	}
	files, _ := filepath.Glob(filepath.Join(s.Dir, "nodes", "*", "pods", "logs", "*", "*", "*.log"))
	for _, f := range files {
		container := filepath.Dir(f)
		pod := filepath.Dir(container)
		node := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(pod))))
		parts := strings.SplitN(filepath.Base(pod), "_", 3)
		if len(parts) != 3 {
			continue
		}
		category := logcollect.Workloads
		if logcollect.SystemNamespace(parts[0]) {
			category = logcollect.System
		}
		out = append(out, logcollect.Source{Path: f, Key: key(f), Category: category,
			Namespace: parts[0], Pod: parts[1], Container: filepath.Base(container), Node: node})
	}
	for program, c := range map[string]struct{ component, category string }{
		"kube-apiserver":          {"apiserver", logcollect.APIServer},
		"kube-scheduler":          {"scheduler", logcollect.Scheduler},
		"kube-controller-manager": {"controller-manager", logcollect.ControllerManager},
	} {
		files, _ := filepath.Glob(filepath.Join(s.Dir, "logs", program+"-*.log"))
		for _, f := range files {
			out = append(out, logcollect.Source{Path: f, Key: key(f), Category: c.category, Component: c.component})
		}
	}
	return out, nil
}

// Events are the cluster's Kubernetes events changed after resourceVersion
// after, oldest first, at most limit; latest is the newest resourceVersion
// of all (none until the cluster's watch has listed them). They come from
// the watch FollowServices keeps. (kube-apiserver's resourceVersions are
// etcd revisions: numbers that grow.)
func (r *Runtime) Events(ctx context.Context, s Spec, after uint64, limit int) (events []corev1.Event, latest uint64, err error) {
	if err := r.FollowServices(s, nil); err != nil {
		return nil, after, err
	}
	w := r.serviceWatchOf(s)
	if w == nil || !w.hasSynced() {
		return nil, after, nil
	}
	list, err := w.events.List(labels.Everything())
	if err != nil {
		return nil, after, err
	}
	rv := func(ev *corev1.Event) uint64 { n, _ := strconv.ParseUint(ev.ResourceVersion, 10, 64); return n }
	for _, ev := range list {
		latest = max(latest, rv(ev))
		if rv(ev) > after {
			events = append(events, *ev)
		}
	}
	sort.Slice(events, func(i, j int) bool { return rv(&events[i]) < rv(&events[j]) })
	return events[:min(len(events), limit)], latest, nil
}
