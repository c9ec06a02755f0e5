// Package logging serves the slice of Cloud Logging v2 that gcloud uses:
// entries:list (gcloud logging read), entries:write (gcloud logging
// write), and a project's logs (gcloud logging logs list|delete).
package logging

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	loggingv2 "google.golang.org/api/logging/v2"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/logging"
	"github.com/kubeyard/kubeyard/internal/status"
)

// Request fields the engine honours; everything else is refused by name.
var (
	listFields  = codec.Fields{"resourceNames", "projectIds", "filter", "orderBy", "pageSize", "pageToken"}
	writeFields = codec.Fields{"logName", "resource.type", "resource.labels.*", "labels.*", "partialSuccess", "dryRun",
		"entries[].logName", "entries[].resource.type", "entries[].resource.labels.*", "entries[].timestamp",
		"entries[].severity", "entries[].insertId", "entries[].labels.*", "entries[].jsonPayload.*", "entries[].textPayload"}
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// The routes, each its own pattern: they share /v2/ with the image
// store's OCI distribution API, and must be routed before it.
const (
	listRoute      = "POST /v2/entries:list"
	writeRoute     = "POST /v2/entries:write"
	logsRoute      = "GET /v2/projects/{project}/logs"
	deleteLogRoute = "DELETE /v2/projects/{project}/logs/{log}"
)

// Routes are the patterns Register serves.
var Routes = []string{listRoute, writeRoute, logsRoute, deleteLogRoute}

// Register adds the Logging routes to mux.
func Register(mux *http.ServeMux, s *logging.Store) {
	h := func(pattern string, f func(r *http.Request) (any, error)) { codec.HandleJSON(mux, pattern, f) }

	h(listRoute, func(r *http.Request) (any, error) {
		var req loggingv2.ListLogEntriesRequest
		if err := codec.Decode(r, listFields, &req); err != nil {
			return nil, err
		}
		q, err := query(&req)
		if err != nil {
			return nil, err
		}
		entries, next, err := s.List(q)
		if err != nil {
			return nil, status.Invalid("pageToken", "The page token is not one this query gave.")
		}
		return struct {
			Entries       []json.RawMessage `json:"entries,omitempty"`
			NextPageToken string            `json:"nextPageToken,omitempty"`
		}{entries, next}, nil
	})
	h(writeRoute, func(r *http.Request) (any, error) {
		var req loggingv2.WriteLogEntriesRequest
		if err := codec.Decode(r, writeFields, &req); err != nil {
			return nil, err
		}
		byProject, err := entries(&req)
		if err != nil || req.DryRun {
			return struct{}{}, err
		}
		for project, es := range byProject {
			if err := s.Write(r.Context(), project, es...); err != nil {
				return nil, err
			}
		}
		return struct{}{}, nil
	})
	h(logsRoute, func(r *http.Request) (any, error) {
		return struct {
			LogNames []string `json:"logNames,omitempty"`
		}{s.Logs(r.PathValue("project"))}, nil
	})
	h(deleteLogRoute, func(r *http.Request) (any, error) {
		project := r.PathValue("project")
		name := "projects/" + project + "/logs/" + url.PathEscape(r.PathValue("log"))
		n, err := s.DeleteLog(r.Context(), project, name)
		if err == nil && n == 0 {
			err = status.Errorf(status.NotFound, "Log %s does not exist.", name)
		}
		return struct{}{}, err
	})
}

// projectName is a resource name entries:list reads: a project, or its
// _Default bucket's _AllLogs view (the same entries here).
var projectName = regexp.MustCompile(`^projects/([a-z][-a-z0-9]*)(/locations/global/buckets/_Default/views/_AllLogs)?$`)

func query(req *loggingv2.ListLogEntriesRequest) (logging.Query, error) {
	var q logging.Query
	for _, name := range req.ResourceNames {
		m := projectName.FindStringSubmatch(name)
		if m == nil {
			return q, status.Invalid("resourceNames", "%q is not a resource name this engine reads: projects/PROJECT_ID (or its _Default bucket's _AllLogs view).", name)
		}
		q.Projects = append(q.Projects, m[1])
	}
	q.Projects = append(q.Projects, req.ProjectIds...)
	if len(q.Projects) == 0 {
		return q, status.Invalid("resourceNames", "At least one resource name is required.")
	}
	f, err := logging.ParseFilter(req.Filter)
	if err != nil {
		return q, status.Invalid("filter", "Invalid filter %q: %v", req.Filter, err)
	}
	q.Filter = f
	switch strings.Join(strings.Fields(strings.ToLower(req.OrderBy)), " ") {
	case "", "timestamp", "timestamp asc":
	case "timestamp desc":
		q.Descending = true
	default:
		return q, status.Invalid("orderBy", "orderBy %q: only \"timestamp asc\" and \"timestamp desc\" are supported.", req.OrderBy)
	}
	q.PageSize = int(req.PageSize)
	if q.PageSize <= 0 {
		q.PageSize = defaultPageSize
	}
	q.PageSize = min(q.PageSize, maxPageSize)
	q.PageToken = req.PageToken
	return q, nil
}

// logNamePattern is projects/PROJECT/logs/LOG_ID, the ID URL-encoded.
var logNamePattern = regexp.MustCompile(`^projects/([a-z][-a-z0-9]*)/logs/([A-Za-z0-9_.\-%/]{1,512})$`)

// entries checks a write request's entries, filled in from the request's
// defaults, and groups them by project.
func entries(req *loggingv2.WriteLogEntriesRequest) (map[string][]logging.Entry, error) {
	if len(req.Entries) == 0 {
		return nil, status.Invalid("entries", "At least one entry is required.")
	}
	out := map[string][]logging.Entry{}
	for i, le := range req.Entries {
		field := func(name string) string { return "entries[" + strconv.Itoa(i) + "]." + name }
		e := logging.Entry{LogName: le.LogName, Severity: strings.ToUpper(le.Severity), InsertID: le.InsertId, TextPayload: le.TextPayload}
		if e.LogName == "" {
			e.LogName = req.LogName
		}
		m := logNamePattern.FindStringSubmatch(e.LogName)
		if m == nil {
			return nil, status.Invalid(field("logName"), "%q is not a log name: projects/PROJECT_ID/logs/LOG_ID, the ID URL-encoded.", e.LogName)
		}
		res := le.Resource
		if res == nil {
			res = req.Resource
		}
		if res == nil || res.Type == "" {
			return nil, status.Invalid(field("resource"), "A monitored resource with a type is required.")
		}
		e.Resource = logging.Resource{Type: res.Type, Labels: res.Labels}
		e.Labels = merge(req.Labels, le.Labels)
		if le.Timestamp != "" {
			t, err := time.Parse(time.RFC3339Nano, le.Timestamp)
			if err != nil {
				return nil, status.Invalid(field("timestamp"), "%q is not an RFC 3339 timestamp.", le.Timestamp)
			}
			e.Timestamp = t
		}
		if e.Severity == "" {
			e.Severity = "DEFAULT"
		}
		if !logging.ValidSeverity(e.Severity) {
			return nil, status.Invalid(field("severity"), "%q is not a severity.", le.Severity)
		}
		if len(le.JsonPayload) > 0 {
			if e.TextPayload != "" {
				return nil, status.Invalid(field("jsonPayload"), "An entry has one payload: jsonPayload or textPayload.")
			}
			e.JSONPayload = json.RawMessage(le.JsonPayload)
		}
		out[m[1]] = append(out[m[1]], e)
	}
	return out, nil
}

// merge is the request's labels with the entry's over them.
func merge(request, entry map[string]string) map[string]string {
	if len(request) == 0 {
		return entry
	}
	out := maps.Clone(request)
	maps.Copy(out, entry)
	return out
}
