package auth

import (
	"errors"
	"net/http"
)

// Code is a stable error code for an authentication or permission
// denial. Transports put it in the JSON error body of HTTP answers and in
// error frames on WebSocket and TCP; clients switch on it, so a code never
// changes meaning.
type Code string

const (
	// CodeUnauthorized: no token, or a token that is not valid (bad
	// signature, wrong algorithm, wrong issuer or audience, not valid yet,
	// malformed, oversized, bad claims). HTTP 401.
	CodeUnauthorized Code = "unauthorized"
	// CodeTokenExpired: the token was valid but its exp has passed (beyond
	// the leeway). HTTP 401. A client that sees it should fetch a fresh
	// token and retry; any other 401 means retrying the same token is
	// pointless.
	CodeTokenExpired Code = "token_expired"
	// CodeForbidden: a valid token that lacks the permission asked for.
	// HTTP 403.
	CodeForbidden Code = "forbidden"
)

// EndTokenExpired is the end reason of a connection whose token expired
// and was not refreshed over the connection in time. The session core
// ends the connection with it when the timer set from
// Principal.Expires fires.
const EndTokenExpired = "token-expired"

// Status is the HTTP status that answers a denial with code c.
func (c Code) Status() int {
	switch c {
	case CodeUnauthorized, CodeTokenExpired:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// Sentinels for errors.Is. Every error this package returns from Verify
// and from a Principal's checks is an *Error that matches exactly one of
// them.
var (
	ErrUnauthorized = errors.New("tether: unauthorized")
	ErrTokenExpired = errors.New("tether: token expired")
	ErrForbidden    = errors.New("tether: forbidden")
)

// Error is a denial: a stable code and a message for humans. The message
// says what was wrong or missing (never the token or the key).
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrForbidden) and friends work.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeUnauthorized:
		return ErrUnauthorized
	case CodeTokenExpired:
		return ErrTokenExpired
	case CodeForbidden:
		return ErrForbidden
	}
	return nil
}

// Status is the HTTP status of the denial.
func (e *Error) Status() int { return e.Code.Status() }

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func unauthorized(msg string) *Error { return &Error{Code: CodeUnauthorized, Message: msg} }
func forbidden(msg string) *Error    { return &Error{Code: CodeForbidden, Message: msg} }
