package mesh

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is an error code of the wire contract (PROTOCOL.md, "Conventions").
type Code string

// The contract's error codes. The same code names the REST error and the WebSocket error.
const (
	CodeBadRequest           Code = "bad_request"
	CodeUnauthorized         Code = "unauthorized"
	CodeForbidden            Code = "forbidden"
	CodeNotFound             Code = "not_found"
	CodeConflict             Code = "conflict"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeRateLimited          Code = "rate_limited"
	CodeInternal             Code = "internal"
	CodeUnavailable          Code = "unavailable"
	CodeInvalidCredentials   Code = "invalid_credentials"
	CodeRegistrationClosed   Code = "registration_closed"
	CodeMuted                Code = "muted"
	CodeBanned               Code = "banned"
	// CodeRangeNotSatisfiable: a file download's Range lies past the file's end (an addition).
	CodeRangeNotSatisfiable Code = "range_not_satisfiable"
)

// statusByCode is the one table from codes to HTTP statuses.
var statusByCode = map[Code]int{
	CodeBadRequest:           http.StatusBadRequest,
	CodeUnauthorized:         http.StatusUnauthorized,
	CodeForbidden:            http.StatusForbidden,
	CodeNotFound:             http.StatusNotFound,
	CodeConflict:             http.StatusConflict,
	CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeInternal:             http.StatusInternalServerError,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeInvalidCredentials:   http.StatusUnauthorized,
	CodeRegistrationClosed:   http.StatusForbidden,
	CodeMuted:                http.StatusForbidden,
	CodeBanned:               http.StatusForbidden,
	CodeRangeNotSatisfiable:  http.StatusRequestedRangeNotSatisfiable,
}

// HTTPStatus is the HTTP status the contract gives code; unknown codes are 500.
func (c Code) HTTPStatus() int {
	if s, ok := statusByCode[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is a user-facing error: its Code and Message reach the client as they are.
type Error struct {
	Code    Code           `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes a user-facing error with a code from the contract.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithDetails returns e with details added (e is not modified).
func (e *Error) WithDetails(details map[string]any) *Error {
	c := *e
	c.Details = details
	return &c
}

// AsError turns any error into a user-facing one: a *Error anywhere in err's chain is kept;
// anything else is an internal error whose text is not shown to clients.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// ErrorCode is the contract code of err (CodeInternal for errors without one).
func ErrorCode(err error) Code { return AsError(err).Code }

// IsCode reports whether err carries code.
func IsCode(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
