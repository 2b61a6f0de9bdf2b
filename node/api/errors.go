package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

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
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, &Error{Code: CodeNotFound, Message: message(err, ErrNotFound)}
	case errors.Is(err, datasets.ErrNotFound):
		return http.StatusNotFound, &Error{Code: CodeNotFound, Message: message(err, datasets.ErrNotFound)}
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, &Error{Code: CodeInvalid, Message: message(err, ErrInvalid)}
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, &Error{Code: CodeConflict, Message: message(err, ErrConflict)}
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, &Error{Code: CodeUnavailable, Message: message(err, ErrUnavailable)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, &Error{Code: CodeUnavailable, Message: "the request was cancelled before it finished; try again"}
	}
	return http.StatusInternalServerError, &Error{Code: CodeInternal, Message: "internal error in the node; its log has the details"}
}

// message is err's text without the sentinel's own words, which the code
// already carries: "invalid request: name is empty" reads "name is empty",
// and "dataset \"x\" not found: not found" reads "dataset \"x\" not found".
func message(err, sentinel error) string {
	msg, word := err.Error(), sentinel.Error()
	if m, ok := strings.CutPrefix(msg, word+": "); ok && m != "" {
		msg = m
	}
	if m, ok := strings.CutSuffix(msg, ": "+word); ok && m != "" {
		msg = m
	}
	return msg
}
