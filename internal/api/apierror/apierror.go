// Package apierror renders engine errors as google.rpc.Status, the error body
// every Google REST API returns and gcloud parses: HTTP code, canonical status
// name, message and typed details (BadRequest field violations, ErrorInfo).
package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error with its google.rpc.Status payload.
type Error struct {
	HTTPCode int
	Status   string // canonical code name, e.g. INVALID_ARGUMENT
	Message  string
	Details  []any
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Status, e.Message) }

// FieldViolation names the request field that is wrong.
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

type badRequest struct {
	Type            string           `json:"@type"`
	FieldViolations []FieldViolation `json:"fieldViolations"`
}

type errorInfo struct {
	Type     string            `json:"@type"`
	Reason   string            `json:"reason"`
	Domain   string            `json:"domain"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func newError(code int, status, format string, args ...any) *Error {
	return &Error{HTTPCode: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// InvalidArgument reports a bad value in field (a dotted request path).
func InvalidArgument(field, format string, args ...any) *Error {
	e := newError(http.StatusBadRequest, "INVALID_ARGUMENT", format, args...)
	if field != "" {
		e.Details = append(e.Details, badRequest{
			Type:            "type.googleapis.com/google.rpc.BadRequest",
			FieldViolations: []FieldViolation{{Field: field, Description: e.Message}},
		})
	}
	return e
}

// NotFound reports a missing resource.
func NotFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, "NOT_FOUND", format, args...)
}

// AlreadyExists reports a name clash on create.
func AlreadyExists(format string, args ...any) *Error {
	return newError(http.StatusConflict, "ALREADY_EXISTS", format, args...)
}

// FailedPrecondition reports a request that cannot run in the current state.
func FailedPrecondition(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "FAILED_PRECONDITION", format, args...)
}

// Unauthenticated reports a missing or wrong bearer token.
func Unauthenticated(format string, args ...any) *Error {
	return newError(http.StatusUnauthorized, "UNAUTHENTICATED", format, args...)
}

// Internal reports an engine failure.
func Internal(format string, args ...any) *Error {
	return newError(http.StatusInternalServerError, "INTERNAL", format, args...)
}

// WithReason adds a google.rpc.ErrorInfo detail, the machine-readable reason.
func (e *Error) WithReason(domain, reason string, metadata map[string]string) *Error {
	e.Details = append(e.Details, errorInfo{
		Type: "type.googleapis.com/google.rpc.ErrorInfo", Reason: reason, Domain: domain, Metadata: metadata,
	})
	return e
}

// Body is the JSON document for the error: {"error": google.rpc.Status}.
func (e *Error) Body() map[string]any {
	status := map[string]any{"code": e.HTTPCode, "message": e.Message, "status": e.Status}
	if len(e.Details) > 0 {
		status["details"] = e.Details
	}
	return map[string]any{"error": status}
}

// Write sends err as a google.rpc.Status response; errors that are not *Error
// become INTERNAL.
func Write(w http.ResponseWriter, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		apiErr = Internal("%v", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(apiErr.HTTPCode)
	_ = json.NewEncoder(w).Encode(apiErr.Body())
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

// IsNotFound reports whether err is a NOT_FOUND API error.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == "NOT_FOUND"
}

// IsAlreadyExists reports whether err is an ALREADY_EXISTS API error.
func IsAlreadyExists(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == "ALREADY_EXISTS"
}

// Field is the request field the error names, or "".
func (e *Error) Field() string {
	for _, d := range e.Details {
		if b, ok := d.(badRequest); ok && len(b.FieldViolations) > 0 {
			return b.FieldViolations[0].Field
		}
	}
	return ""
}
