// Package logging is the engine's Cloud Logging: log entries by project,
// kept in the engine's store (so they survive a restart) for a bounded,
// configurable time and number, and listed as entries:list lists them,
// through the Logging query language.
//
// Entries are held in memory too, as the JSON they are served as, sorted
// by time: a query over a hundred thousand entries reads no store and
// decodes no entry, looking up only the fields its filter names.
package logging

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/store"
)

// Entry is a log entry as the Logging API carries it (LogEntry).
type Entry struct {
	LogName          string            `json:"logName"`
	Resource         Resource          `json:"resource"`
	Timestamp        time.Time         `json:"timestamp"`
	ReceiveTimestamp time.Time         `json:"receiveTimestamp"`
	Severity         string            `json:"severity,omitempty"`
	InsertID         string            `json:"insertId"`
	Labels           map[string]string `json:"labels,omitempty"`
	JSONPayload      any               `json:"jsonPayload,omitempty"`
	TextPayload      string            `json:"textPayload,omitempty"`
}

// Resource is the monitored resource an entry is about.
type Resource struct {
	Type   string            `json:"type"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Defaults of Config.
const (
	// DefaultRetention is the _Default bucket's retention.
	DefaultRetention  = 30 * 24 * time.Hour
	DefaultMaxEntries = 1_000_000
)

// Config configures a Store.
type Config struct {
	KV     store.KV
	Clock  clock.Clock
	Logger *slog.Logger
	// Retention is how long entries are kept (default DefaultRetention);
	// MaxEntries how many, the oldest going first (default
	// DefaultMaxEntries).
	Retention  time.Duration
	MaxEntries int
}

// Store holds the projects' log entries.
type Store struct {
	cfg Config

	mu      sync.RWMutex
	records []*record // every project's, in key order
	byLog   map[string]int
	seq     uint64
}

// record is a stored entry.
type record struct {
	key     string // logs/<project>/<sort>
	sort    string // <unix nanoseconds, 19 digits>-<insertId>: time order
	project string
	logName string
	at      time.Time
	raw     []byte
}

const prefix = "logs/"

// Open loads the entries kept in the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Clock == nil {
		cfg.Clock = &clock.Offset{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	s := &Store{cfg: cfg, byLog: map[string]int{}}
	items, err := cfg.KV.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	for _, it := range items {
		r, err := recordOf(it.Key, it.Value)
		if err != nil {
			cfg.Logger.Warn("logging: skipping a stored entry", "key", it.Key, "err", err)
			continue
		}
		s.records = append(s.records, r)
		s.byLog[r.project+"\x00"+r.logName]++
	}
	slices.SortFunc(s.records, compareRecords)
	return s, s.prune(ctx)
}

func recordOf(key string, raw []byte) (*record, error) {
	rest, ok := strings.CutPrefix(key, prefix)
	project, sort, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return nil, fmt.Errorf("not an entry's key")
	}
	var head struct {
		LogName   string    `json:"logName"`
		Timestamp time.Time `json:"timestamp"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	return &record{key: key, sort: sort, project: project, logName: head.LogName, at: head.Timestamp, raw: raw}, nil
}

func compareRecords(a, b *record) int {
	if c := strings.Compare(a.sort, b.sort); c != 0 {
		return c
	}
	return strings.Compare(a.project, b.project)
}

// writeChunk keeps a transaction within etcd's limits (128 operations).
const writeChunk = 64

// Write stores entries of a project, filling in their insertId,
// timestamp (when unset) and receiveTimestamp.
func (s *Store) Write(ctx context.Context, project string, entries ...Entry) error {
	return s.WriteWith(ctx, project, nil, entries...)
}

// WriteWith writes entries as Write does, and the writes also in the same
// transaction as the last of them (a writer's cursor, so that what it
// wrote and where it is are never told apart by a crash).
func (s *Store) WriteWith(ctx context.Context, project string, also []store.Write, entries ...Entry) error {
	now := s.cfg.Clock.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := make([]*record, 0, len(entries))
	for _, e := range entries {
		if e.Timestamp.IsZero() {
			e.Timestamp = now
		}
		e.Timestamp, e.ReceiveTimestamp = e.Timestamp.UTC(), now
		if e.InsertID == "" {
			s.seq++
			e.InsertID = strconv.FormatInt(now.UnixNano(), 36) + strconv.FormatUint(s.seq, 36)
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("logging: %w", err)
		}
		sort := fmt.Sprintf("%019d-%s", e.Timestamp.UnixNano(), e.InsertID)
		recs = append(recs, &record{key: prefix + project + "/" + sort, sort: sort, project: project, logName: e.LogName, at: e.Timestamp, raw: raw})
	}
	for i := 0; i < len(recs) || i == 0 && len(also) > 0; i += writeChunk {
		chunk := recs[i:min(i+writeChunk, len(recs))]
		writes := make([]store.Write, 0, len(chunk)+len(also))
		for _, r := range chunk {
			writes = append(writes, store.Write{Key: r.key, Value: json.RawMessage(r.raw), Revision: store.Any})
		}
		if i+writeChunk >= len(recs) {
			writes = append(writes, also...)
		}
		if err := s.cfg.KV.Commit(ctx, writes...); err != nil {
			return fmt.Errorf("logging: %w", err)
		}
	}
	for _, r := range recs {
		i, _ := slices.BinarySearchFunc(s.records, r, compareRecords)
		s.records = slices.Insert(s.records, i, r)
		s.byLog[r.project+"\x00"+r.logName]++
	}
	return s.pruneLocked(ctx)
}

func (s *Store) prune(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pruneLocked(ctx)
}

// pruneLocked drops entries older than the retention, and the oldest
// beyond the most kept.
func (s *Store) pruneLocked(ctx context.Context) error {
	cutoff := s.cfg.Clock.Now().Add(-s.cfg.Retention)
	n := 0
	for n < len(s.records) && (len(s.records)-n > s.cfg.MaxEntries || s.records[n].at.Before(cutoff)) {
		n++
	}
	if n == 0 {
		return nil
	}
	if err := s.remove(ctx, s.records[:n]); err != nil {
		return err
	}
	for _, r := range s.records[:n] {
		k := r.project + "\x00" + r.logName
		if s.byLog[k]--; s.byLog[k] <= 0 {
			delete(s.byLog, k)
		}
	}
	s.records = slices.Delete(s.records, 0, n)
	return nil
}

// Query is what entries:list asks for.
type Query struct {
	Projects []string
	Filter   *Filter
	// Descending lists the newest first.
	Descending bool
	PageSize   int
	// PageToken is the NextPageToken of the page before.
	PageToken string
}

// pageToken is what a page token holds: the sort key and project of the
// last entry of its page.
var pageToken = regexp.MustCompile("^[0-9]{19}-[^\x00]+\x00[a-z][-a-z0-9]*$")

// ErrBadPageToken is a page token this store did not give.
var ErrBadPageToken = fmt.Errorf("logging: not a page token of this query")

// List returns a page of the entries that match, as JSON, and the token
// of the next page ("" when there is none).
func (s *Store) List(q Query) ([]json.RawMessage, string, error) {
	after := ""
	if q.PageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.PageToken)
		if err != nil || !pageToken.Match(b) {
			return nil, "", ErrBadPageToken
		}
		after = string(b)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Where the page starts: after the last entry of the page before.
	start, end := 0, len(s.records)
	if after != "" {
		sort, project, _ := strings.Cut(after, "\x00")
		i, found := slices.BinarySearchFunc(s.records, &record{sort: sort, project: project}, compareRecords)
		if q.Descending {
			end = i
		} else if start = i; found {
			start++
		}
	}
	var out []json.RawMessage
	last := ""
	visit := func(r *record) bool {
		if !slices.Contains(q.Projects, r.project) || !q.Filter.Match(r) {
			return true
		}
		if len(out) == q.PageSize {
			return false // there is more
		}
		out, last = append(out, r.raw), r.sort+"\x00"+r.project
		return true
	}
	more := false
	if q.Descending {
		for i := end - 1; i >= start && !more; i-- {
			more = !visit(s.records[i])
		}
	} else {
		for i := start; i < end && !more; i++ {
			more = !visit(s.records[i])
		}
	}
	if !more {
		return out, "", nil
	}
	return out, base64.RawURLEncoding.EncodeToString([]byte(last)), nil
}

// Logs lists the names of a project's logs that have entries.
func (s *Store) Logs(project string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for k := range s.byLog {
		if p, name, _ := strings.Cut(k, "\x00"); p == project {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// DeleteLog deletes every entry of a project's log (logs delete).
func (s *Store) DeleteLog(ctx context.Context, project, logName string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []*record
	kept := s.records[:0:0]
	for _, r := range s.records {
		if r.project == project && r.logName == logName {
			gone = append(gone, r)
		} else {
			kept = append(kept, r)
		}
	}
	if err := s.remove(ctx, gone); err != nil {
		return 0, err
	}
	s.records = kept
	delete(s.byLog, project+"\x00"+logName)
	return len(gone), nil
}

// remove deletes records from the store (not from memory).
func (s *Store) remove(ctx context.Context, recs []*record) error {
	for chunk := range slices.Chunk(recs, writeChunk) {
		writes := make([]store.Write, len(chunk))
		for i, r := range chunk {
			writes[i] = store.Write{Key: r.key, Revision: store.Any}
		}
		if err := s.cfg.KV.Commit(ctx, writes...); err != nil {
			return fmt.Errorf("logging: %w", err)
		}
	}
	return nil
}
