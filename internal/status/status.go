// Package status is the google.rpc.Status model of the engine's errors: a
// canonical code (its number, its name, its HTTP status), a message, the
// request field at fault and a machine-readable reason (ErrorInfo). The
// domain packages (engine, vpc, clouddns) return these; encoding them as
// HTTP responses is the API layer's business (internal/api/codec).
package status

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Code is a canonical error code (google.rpc.Code).
type Code int

// The canonical codes the engine uses, with their google.rpc.Code numbers.
const (
	OK                 Code = 0
	Cancelled          Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	Unauthenticated    Code = 16
)

var codes = map[Code]struct {
	name string
	http int
}{
	OK:                 {"OK", http.StatusOK},
	Cancelled:          {"CANCELLED", 499},
	Unknown:            {"UNKNOWN", http.StatusInternalServerError},
	InvalidArgument:    {"INVALID_ARGUMENT", http.StatusBadRequest},
	DeadlineExceeded:   {"DEADLINE_EXCEEDED", http.StatusGatewayTimeout},
	NotFound:           {"NOT_FOUND", http.StatusNotFound},
	AlreadyExists:      {"ALREADY_EXISTS", http.StatusConflict},
	PermissionDenied:   {"PERMISSION_DENIED", http.StatusForbidden},
	ResourceExhausted:  {"RESOURCE_EXHAUSTED", http.StatusTooManyRequests},
	FailedPrecondition: {"FAILED_PRECONDITION", http.StatusBadRequest},
	Aborted:            {"ABORTED", http.StatusConflict},
	Unimplemented:      {"UNIMPLEMENTED", http.StatusNotImplemented},
	Internal:           {"INTERNAL", http.StatusInternalServerError},
	Unavailable:        {"UNAVAILABLE", http.StatusServiceUnavailable},
	Unauthenticated:    {"UNAUTHENTICATED", http.StatusUnauthorized},
}

// String is the code's canonical name ("INVALID_ARGUMENT").
func (c Code) String() string {
	if d, ok := codes[c]; ok {
		return d.name
	}
	return fmt.Sprintf("CODE_%d", int(c))
}

// HTTPStatus is the HTTP status Google's REST APIs answer the code with.
func (c Code) HTTPStatus() int {
	if d, ok := codes[c]; ok {
		return d.http
	}
	return http.StatusInternalServerError
}

// Reason is a google.rpc.ErrorInfo: why, in a form programs match on.
type Reason struct {
	Domain   string
	Reason   string
	Metadata map[string]string
}

// Error is an error with its google.rpc.Status.
type Error struct {
	Code    Code
	Message string
	// Field is the request field at fault (a dotted path), for
	// INVALID_ARGUMENT; it becomes a BadRequest field violation.
	Field  string
	Reason *Reason
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

// WithReason adds the machine-readable reason.
func (e *Error) WithReason(domain, reason string, metadata map[string]string) *Error {
	e.Reason = &Reason{Domain: domain, Reason: reason, Metadata: metadata}
	return e
}

// Errorf returns an error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports a bad value in field (a dotted request path):
// INVALID_ARGUMENT naming it.
func Invalid(field, format string, args ...any) *Error {
	e := Errorf(InvalidArgument, format, args...)
	e.Field = field
	return e
}

// From returns err's status: its *Error, CANCELLED for a cancelled
// context, or INTERNAL carrying err's text (an engine failure). nil for
// nil.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.Canceled) {
		return Errorf(Cancelled, "%v", err)
	}
	return Errorf(Internal, "%v", err)
}

// CodeOf is err's code: OK for nil, INTERNAL for an error without one.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	return From(err).Code
}

// Is reports whether err has the code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }
