package kubeletapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/kubeyard/kubeyard/internal/podruntime"
)

// logOptions are /containerLogs' query parameters (kubectl logs' flags).
type logOptions struct {
	follow, previous, timestamps bool
	tail                         int // lines from the end; -1: all
	since                        time.Time
	limit                        int64 // bytes; 0: no limit
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{follow: q.Get("follow") == "true", previous: q.Get("previous") == "true", timestamps: q.Get("timestamps") == "true", tail: -1}
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return o, fmt.Errorf("tailLines: %q is not a count of lines", v)
		}
		o.tail = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return o, fmt.Errorf("sinceSeconds: %q must be a positive number of seconds", v)
		}
		o.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, fmt.Errorf("sinceTime: %w", err)
		}
		o.since = t
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("limitBytes: %q must be a positive number of bytes", v)
		}
		o.limit = n
	}
	return o, nil
}

// containerLogs answers kubectl logs: the log of the container's last
// attempt (or, with previous, the one before), followed while it runs.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	pod, ok := s.pod(w, r)
	if !ok {
		return
	}
	o, err := parseLogOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name := r.PathValue("container")
	cs, err := s.cfg.Runtime.Containers(string(pod.UID))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var attempts []podruntime.Container
	for _, c := range cs {
		if c.Name == name {
			attempts = append(attempts, c)
		}
	}
	want := len(attempts) - 1
	if o.previous {
		want--
	}
	if want < 0 {
		msg := fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", name, pod.Name)
		if o.previous {
			msg = fmt.Sprintf("previous terminated container %q in pod %q not found", name, pod.Name)
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	c := attempts[want]
	w.Header().Set("Content-Type", "text/plain")
	out := io.Writer(w)
	if f, ok := w.(http.Flusher); ok && o.follow {
		out = flushWriter{w, f}
	}
	alive := func() bool { return false }
	if !o.previous && c.State == podruntime.Running {
		alive = s.stillRunning(pod, c)
	}
	_ = followLog(r.Context(), c, o, alive, out, out)
}

type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.f.Flush()
	return n, err
}

// entry is one line of a CRI log: "<time> <stream> <F|P> <text>".
type entry struct {
	at     time.Time
	stream string
	full   bool // F: the text ends a line; P: a part of a longer one
	text   []byte
}

func parseEntry(line []byte) (entry, bool) {
	f := bytes.SplitN(line, []byte(" "), 4)
	if len(f) < 3 {
		return entry{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, string(f[0]))
	if err != nil {
		return entry{}, false
	}
	e := entry{at: at, stream: string(f[1]), full: string(f[2]) != "P"}
	if len(f) == 4 {
		e.text = f[3]
	}
	return e, true
}

// followLog writes a container's log as the kubelet's log reader does,
// each stream to its writer, and with follow goes on while alive says the
// container runs.
func followLog(ctx context.Context, c podruntime.Container, o logOptions, alive func() bool, stdout, stderr io.Writer) error {
	f, err := os.Open(c.LogPath)
	if err != nil {
		return err
	}
	defer f.Close()
	written := int64(0)
	write := func(e entry) bool {
		w := stdout
		if e.stream == "stderr" {
			w = stderr
		}
		var b []byte
		if o.timestamps {
			b = append(b, e.at.Format(time.RFC3339Nano)+" "...)
		}
		b = append(b, e.text...)
		if e.full {
			b = append(b, '\n')
		}
		if o.limit > 0 && written+int64(len(b)) > o.limit {
			b = b[:o.limit-written]
		}
		n, err := w.Write(b)
		written += int64(n)
		return err == nil && (o.limit == 0 || written < o.limit)
	}
	r := bufio.NewReader(f)
	var old []entry
	var partial []byte
	// What is there: filtered by time, then the last lines.
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			partial = line
			break
		}
		if e, ok := parseEntry(bytes.TrimSuffix(line, []byte("\n"))); ok && !e.at.Before(o.since) {
			old = append(old, e)
		}
	}
	if o.tail >= 0 {
		old = lastLines(old, o.tail)
	}
	for _, e := range old {
		if !write(e) {
			return nil
		}
	}
	if !o.follow {
		return nil
	}
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			if e, ok := parseEntry(bytes.TrimSuffix(partial, []byte("\n"))); ok && !write(e) {
				return nil
			}
			partial = nil
			continue
		}
		// At the end for now: go on while the container runs.
		if !alive() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lastLines keeps the entries of the last n lines (a line may be several
// partial entries).
func lastLines(es []entry, n int) []entry {
	lines := 0
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].full {
			if lines == n {
				return es[i+1:]
			}
			lines++
		}
	}
	return es
}
