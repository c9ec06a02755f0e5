// Package logcollect turns a cluster's log files into Cloud Logging
// entries, as GKE's logging agent does: containers' output (the kubelet's
// CRI log files) as k8s_container entries in the stdout and stderr logs,
// and control-plane components' logs (klog) as k8s_control_plane_component
// entries in container.googleapis.com/<component>, and Kubernetes events
// in the events log. It reads complete lines
// only, from where a cursor says it stopped, so that a writer that stores
// the cursor with the entries it made tells each line exactly once.
package logcollect

import (
	"bufio"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kubeyard/kubeyard/internal/logging"
)

// Categories of sources, as loggingConfig's components name them.
const (
	System            = "SYSTEM_COMPONENTS"
	Workloads         = "WORKLOADS"
	APIServer         = "APISERVER"
	Scheduler         = "SCHEDULER"
	ControllerManager = "CONTROLLER_MANAGER"
)

// Source is one log file.
type Source struct {
	// Path is the file; Key names it in a Cursor (stable and short: the
	// path below the cluster's folder).
	Path, Key string
	// Category is the loggingConfig component that collects it.
	Category string
	// A container's log: where it runs.
	Namespace, Pod, Container, Node string
	// A control-plane component's log: "apiserver", "scheduler" or
	// "controller-manager".
	Component string
}

// Cluster is what entries say of the cluster their logs come from.
type Cluster struct {
	Project, Location, Name string
}

// Cursor is how far each source has been read, in bytes, by key; Enabled
// are the categories collected when it was written; Events is the
// resourceVersion of the last Kubernetes event told.
type Cursor struct {
	Offsets map[string]int64 `json:"offsets"`
	Enabled []string         `json:"enabled"`
	Events  uint64           `json:"events,omitempty"`
}

// SystemNamespace says whether a namespace's containers are the cluster's
// system components (GKE's list) rather than workloads.
func SystemNamespace(ns string) bool {
	switch ns {
	case "kube-system", "kube-node-lease", "kube-public", "gke-managed-system", "gke-gmp-system", "istio-system", "knative-serving", "gke-connect", "config-management-system":
		return true
	}
	return strings.HasPrefix(ns, "gke-")
}

// Start is the cursor a collection begins from when enabled categories
// change: sources of categories collected before keep their offsets, those
// of newly enabled categories start at their end (what was written before
// is not collected), those of disabled ones are forgotten. A cluster with
// no cursor yet (new) starts every source at 0.
func Start(prev *Cursor, enabled []string, sources []Source) Cursor {
	on := map[string]bool{}
	for _, c := range enabled {
		on[c] = true
	}
	next := Cursor{Offsets: map[string]int64{}, Enabled: enabled}
	if prev != nil {
		next.Events = prev.Events
	}
	wasOn := map[string]bool{}
	if prev != nil {
		for _, c := range prev.Enabled {
			wasOn[c] = true
		}
	}
	for _, s := range sources {
		switch {
		case !on[s.Category] || prev == nil:
			// Not collected; or a new cluster's, read from the start.
		case wasOn[s.Category]:
			if off, seen := prev.Offsets[s.Key]; seen {
				next.Offsets[s.Key] = off
			}
		default:
			if fi, err := os.Stat(s.Path); err == nil {
				next.Offsets[s.Key] = fi.Size()
			}
		}
	}
	return next
}

// Collect reads what the sources hold beyond cur (sources of categories
// not enabled are skipped) and returns at most max entries, and the
// cursor just past the lines they came from. A line not yet ended is left
// for later, as is a container's line split in parts until its last part.
func Collect(c Cluster, sources []Source, cur Cursor, max int, now time.Time) ([]logging.Entry, Cursor) {
	on := map[string]bool{}
	for _, cat := range cur.Enabled {
		on[cat] = true
	}
	next := Cursor{Offsets: map[string]int64{}, Enabled: cur.Enabled, Events: cur.Events}
	var entries []logging.Entry
	for _, s := range sources {
		if !on[s.Category] {
			continue
		}
		off := cur.Offsets[s.Key]
		if len(entries) < max {
			var got []logging.Entry
			got, off = read(c, s, off, max-len(entries), now)
			entries = append(entries, got...)
		}
		next.Offsets[s.Key] = off
	}
	return entries, next
}

// read reads up to max entries of s from offset off, and returns the
// offset past their lines.
func read(c Cluster, s Source, off int64, max int, now time.Time) ([]logging.Entry, int64) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, off
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, off
	}
	if fi.Size() <= off {
		// Nothing new; a file cut shorter than the cursor (replaced) is
		// read again from its end.
		return nil, min(off, fi.Size())
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, off
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var out []logging.Entry
	var partial strings.Builder // a container line's parts so far
	pos, done := off, off       // done: past the last line made an entry (or skipped)
	for len(out) < max {
		line, err := r.ReadString('\n')
		if err != nil {
			break // an unfinished line (io.EOF before its end) waits
		}
		pos += int64(len(line))
		line = strings.TrimSuffix(line, "\n")
		var e *logging.Entry
		if s.Component != "" {
			e = componentEntry(c, s, line, now)
		} else {
			var complete bool
			e, complete = containerEntry(c, s, line, &partial)
			if !complete {
				continue
			}
		}
		done = pos
		if e != nil {
			out = append(out, *e)
		}
	}
	return out, done
}

// LogName is a project's log of that name, as entries carry it.
func LogName(project, log string) string {
	return "projects/" + project + "/logs/" + url.PathEscape(log)
}

// containerEntry makes an entry of a CRI log line ("TIME STREAM TAG
// MESSAGE", TAG P for a part, F for the last); complete is false while the
// line goes on in parts. A JSON object is the entry's jsonPayload, its
// "severity" (or "level") field its severity; otherwise stderr is ERROR
// and stdout INFO, as GKE's agent has them.
func containerEntry(c Cluster, s Source, line string, partial *strings.Builder) (e *logging.Entry, complete bool) {
	fields := strings.SplitN(line, " ", 4)
	if len(fields) < 4 {
		return nil, true // not a CRI line: skipped
	}
	at, err := time.Parse(time.RFC3339Nano, fields[0])
	if err != nil {
		return nil, true
	}
	stream, tag, msg := fields[1], fields[2], fields[3]
	partial.WriteString(msg)
	if tag == "P" {
		return nil, false
	}
	msg = partial.String()
	partial.Reset()
	e = &logging.Entry{
		LogName:   LogName(c.Project, stream),
		Timestamp: at,
		Resource: logging.Resource{Type: "k8s_container", Labels: map[string]string{
			"project_id": c.Project, "location": c.Location, "cluster_name": c.Name,
			"namespace_name": s.Namespace, "pod_name": s.Pod, "container_name": s.Container,
		}},
		Labels:   map[string]string{"compute.googleapis.com/resource_name": s.Node},
		Severity: "INFO",
	}
	if stream == "stderr" {
		e.Severity = "ERROR"
	}
	var obj map[string]any
	if strings.HasPrefix(strings.TrimSpace(msg), "{") && json.Unmarshal([]byte(msg), &obj) == nil {
		e.JSONPayload = obj
		for _, k := range []string{"severity", "level"} {
			if sev, ok := obj[k].(string); ok && severities[strings.ToUpper(sev)] {
				e.Severity = strings.ToUpper(sev)
				break
			}
		}
	} else {
		e.TextPayload = msg
	}
	return e, true
}

// severities are Cloud Logging's LogSeverity names.
var severities = map[string]bool{"DEFAULT": true, "DEBUG": true, "INFO": true, "NOTICE": true, "WARNING": true,
	"ERROR": true, "CRITICAL": true, "ALERT": true, "EMERGENCY": true}

// klogSeverity maps klog's first letter to a severity.
var klogSeverity = map[byte]string{'I': "INFO", 'W': "WARNING", 'E': "ERROR", 'F': "CRITICAL"}

// componentEntry makes an entry of a control-plane component's log line:
// klog's header gives its severity and time (klog writes no year: the
// year is now's, or the last one for a date ahead of now). Lines the
// supervisor writes ("---- ... starting ...") are skipped; a line without
// a header (a stack trace's) is INFO, at now.
func componentEntry(c Cluster, s Source, line string, now time.Time) *logging.Entry {
	if strings.HasPrefix(line, "---- ") || strings.TrimSpace(line) == "" {
		return nil
	}
	e := &logging.Entry{
		LogName:   LogName(c.Project, "container.googleapis.com/"+s.Component),
		Timestamp: now,
		Resource: logging.Resource{Type: "k8s_control_plane_component", Labels: map[string]string{
			"project_id": c.Project, "location": c.Location, "cluster_name": c.Name,
			"component_name": s.Component, "component_location": c.Location,
		}},
		Severity:    "INFO",
		TextPayload: line,
	}
	if len(line) > 21 {
		if sev, ok := klogSeverity[line[0]]; ok {
			if at, err := time.Parse("0102 15:04:05.000000", line[1:21]); err == nil {
				at = time.Date(now.Year(), at.Month(), at.Day(), at.Hour(), at.Minute(), at.Second(), at.Nanosecond(), time.UTC)
				if at.After(now.Add(24 * time.Hour)) {
					at = at.AddDate(-1, 0, 0)
				}
				e.Severity, e.Timestamp = sev, at
			}
		}
	}
	return e
}
