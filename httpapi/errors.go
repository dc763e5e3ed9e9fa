package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Error codes are part of the API contract (docs/api.md): clients switch on
// them, so they never change meaning.
const (
	CodeBadChannel        = "bad_channel"
	CodeBadCursor         = "bad_cursor"
	CodeCursorAhead       = "cursor_ahead"
	CodeBodyTooLarge      = "body_too_large"
	CodeInvalidJSON       = "invalid_json"
	CodeBadWait           = "bad_wait"
	CodeBadLimit          = "bad_limit"
	CodeBadIdempotencyKey = "bad_idempotency_key"
	CodeNotFound          = "not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeUnavailable       = "unavailable"
	CodeInternal          = "internal"
	CodeInvalidUTF8       = "invalid_utf8"
	CodeBodyTimeout       = "body_timeout"
	CodeBadBody           = "bad_body"
	CodeStorageFull       = "storage_full"
)

// apiError is an error answer: an HTTP status, a stable code and a message
// for humans.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

// writeError answers with {"error": {"code": ..., "message": ...}}.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

// writeJSON answers with v as a JSON body and returns the body's size.
// Encoding errors can only come from a broken connection at this point,
// and there is no one to tell.
func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"encoding failed"}}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	n, _ := w.Write(append(b, '\n'))
	return n
}

// writeBody answers an encoded JSON body (with its newline) and returns
// the bytes written.
func writeBody(w http.ResponseWriter, status int, body []byte) int {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	n, _ := w.Write(body)
	return n
}

// clientMessage is err's text without the "tether: " prefixes of the
// server's own errors, which name packages and mean nothing to a client.
func clientMessage(err error) string {
	return strings.ReplaceAll(err.Error(), "tether: ", "")
}
