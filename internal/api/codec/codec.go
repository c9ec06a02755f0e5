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
