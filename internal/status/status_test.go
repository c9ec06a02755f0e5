package status

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestCodes(t *testing.T) {
	for _, c := range []struct {
		code Code
		num  int
		name string
		http int
	}{
		{InvalidArgument, 3, "INVALID_ARGUMENT", 400},
		{FailedPrecondition, 9, "FAILED_PRECONDITION", 400},
		{NotFound, 5, "NOT_FOUND", 404},
		{AlreadyExists, 6, "ALREADY_EXISTS", 409},
		{Unauthenticated, 16, "UNAUTHENTICATED", 401},
		{Internal, 13, "INTERNAL", 500},
		{Cancelled, 1, "CANCELLED", 499},
	} {
		if int(c.code) != c.num || c.code.String() != c.name || c.code.HTTPStatus() != c.http {
			t.Errorf("%s: number %d, name %s, HTTP %d; want %d %s %d", c.name, int(c.code), c.code, c.code.HTTPStatus(), c.num, c.name, c.http)
		}
	}
}

func TestFrom(t *testing.T) {
	wrapped := fmt.Errorf("create: %w", Invalid("cluster.name", "bad name %q", "X"))
	if e := From(wrapped); e.Code != InvalidArgument || e.Field != "cluster.name" || e.Message != `bad name "X"` {
		t.Errorf("wrapped: %+v", e)
	}
	if !Is(wrapped, InvalidArgument) || Is(wrapped, NotFound) || Is(nil, OK) {
		t.Error("Is")
	}
	if CodeOf(errors.New("disk full")) != Internal || CodeOf(nil) != OK {
		t.Error("a plain error is INTERNAL, nil is OK")
	}
	if CodeOf(fmt.Errorf("wait: %w", context.Canceled)) != Cancelled {
		t.Error("a cancelled context is CANCELLED")
	}
	e := Errorf(FailedPrecondition, "busy").WithReason("container.googleapis.com", "CLUSTER_ALREADY_HAS_OPERATION", nil)
	if e.Reason.Reason != "CLUSTER_ALREADY_HAS_OPERATION" || e.Error() != "FAILED_PRECONDITION: busy" {
		t.Errorf("%+v", e)
	}
}
