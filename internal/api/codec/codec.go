// Package codec is the HTTP edge of the engine's REST APIs: it decodes
// request bodies against the fields an endpoint honours, and writes
// answers as JSON and errors as google.rpc.Status, the body every Google
// REST API returns and gcloud parses (HTTP code, canonical status name,
// message, and typed details: BadRequest field violations, ErrorInfo).
package codec

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/kubeyard/kubeyard/internal/status"
)

type fieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

type badRequest struct {
	Type            string           `json:"@type"`
	FieldViolations []fieldViolation `json:"fieldViolations"`
}

type errorInfo struct {
	Type     string            `json:"@type"`
	Reason   string            `json:"reason"`
	Domain   string            `json:"domain"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Body is the JSON document for err: {"error": google.rpc.Status}. An
// error without a status is INTERNAL.
func Body(err error) map[string]any {
	e := status.From(err)
	st := map[string]any{"code": e.Code.HTTPStatus(), "message": e.Message, "status": e.Code.String()}
	var details []any
	if e.Field != "" {
		details = append(details, badRequest{
			Type:            "type.googleapis.com/google.rpc.BadRequest",
			FieldViolations: []fieldViolation{{Field: e.Field, Description: e.Message}},
		})
	}
	if r := e.Reason; r != nil {
		details = append(details, errorInfo{Type: "type.googleapis.com/google.rpc.ErrorInfo", Reason: r.Reason, Domain: r.Domain, Metadata: r.Metadata})
	}
	if len(details) > 0 {
		st["details"] = details
	}
	return map[string]any{"error": st}
}

// Write sends err as a google.rpc.Status response.
func Write(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status.From(err).Code.HTTPStatus())
	_ = json.NewEncoder(w).Encode(Body(err))
}

// HandleJSON routes pattern to f, whose answer is written as JSON, or as a
// google.rpc.Status when f fails.
func HandleJSON(mux *http.ServeMux, pattern string, f func(r *http.Request) (any, error)) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r)
		if err != nil {
			Write(w, err)
			return
		}
		WriteJSON(w, out)
	})
}

// WriteJSON sends v as a 200 JSON response.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	data, err := json.Marshal(v)
	if err != nil {
		Write(w, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Write(data)
}

// StatusErrors makes the plain-text errors of Go's ServeMux (404 for a
// path no route serves, 405 for a method a route does not take) answer
// as google.rpc.Status like every other error, so that clients parsing
// Google's error body get one.
func StatusErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&statusWriter{ResponseWriter: w, r: r}, r)
	})
}

// statusWriter rewrites the mux's own text errors; everything else passes.
type statusWriter struct {
	http.ResponseWriter
	r         *http.Request
	rewritten bool
}

func (s *statusWriter) WriteHeader(code int) {
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) &&
		s.Header().Get("Content-Type") == "text/plain; charset=utf-8" && s.Header().Get("X-Content-Type-Options") == "nosniff" {
		s.rewritten = true
		s.Header().Del("X-Content-Type-Options")
		err := status.Errorf(status.NotFound, "No such method: %s %s.", s.r.Method, s.r.URL.Path)
		if code == http.StatusMethodNotAllowed {
			err = status.Errorf(status.Unimplemented, "Method %s is not allowed on %s (allowed: %s).", s.r.Method, s.r.URL.Path, s.Header().Get("Allow"))
		}
		s.Header().Set("Content-Type", "application/json; charset=UTF-8")
		s.ResponseWriter.WriteHeader(code)
		_ = json.NewEncoder(s.ResponseWriter).Encode(withHTTPCode(Body(err), code))
		return
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.rewritten {
		return len(b), nil // the mux's text, replaced
	}
	return s.ResponseWriter.Write(b)
}

// withHTTPCode sets the HTTP code in a google.rpc.Status body.
func withHTTPCode(body map[string]any, code int) map[string]any {
	body["error"].(map[string]any)["code"] = code
	return body
}
