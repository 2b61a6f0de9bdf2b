package api

import (
	"context"
	"errors"
	"net/http"

	"xnode/node/datasets"
)

// Codes of Error.
const (
	CodeInvalid      = "invalid"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeUnavailable  = "unavailable"
	CodeUnauthorized = "unauthorized"
	CodeTooLarge     = "too_large"
	CodeMethod       = "method_not_allowed"
	CodeInternal     = "internal"
)

// Error makes an API error usable as a Go error: the client returns it for
// every non-2xx answer.
func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code
}

// Unwrap maps the error's code back to the sentinel a Backend returned, so
// a client caller can test errors.Is(err, api.ErrNotFound).
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeNotFound:
		return ErrNotFound
	case CodeInvalid:
		return ErrInvalid
	case CodeConflict:
		return ErrConflict
	case CodeUnavailable:
		return ErrUnavailable
	}
	return nil
}

// classify returns the status and body a Backend error is answered with.
// Errors without a sentinel are internal: the client sees a generic message
// and the real error goes to the node's log.
func classify(err error) (int, *Error) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, datasets.ErrNotFound):
		return http.StatusNotFound, &Error{Code: CodeNotFound, Message: err.Error()}
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, &Error{Code: CodeInvalid, Message: err.Error()}
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, &Error{Code: CodeConflict, Message: err.Error()}
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, &Error{Code: CodeUnavailable, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, &Error{Code: CodeUnavailable, Message: "the request was cancelled before it finished; try again"}
	}
	return http.StatusInternalServerError, &Error{Code: CodeInternal, Message: "internal error in the node; its log has the details"}
}
