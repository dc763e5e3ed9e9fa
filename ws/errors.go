package ws

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/tether-run/tether/origin"
)

// jsonErrors turns the plain-text error answers websocket.Accept writes
// (426 without an upgrade, 403 for a refused Origin, 400 for a bad
// handshake) into the JSON error body every tether route answers
// (docs/api.md): {"error":{"code":...,"message":...}}. Successful
// upgrades pass through untouched (Hijack reaches the connection through
// Unwrap).
type jsonErrors struct {
	http.ResponseWriter
	status int          // an error status held back, 0 otherwise
	body   bytes.Buffer // the library's message, while status is held
}

func (j *jsonErrors) WriteHeader(status int) {
	if status < 400 {
		j.ResponseWriter.WriteHeader(status)
		return
	}
	j.status = status
}

func (j *jsonErrors) Write(p []byte) (int, error) {
	if j.status == 0 {
		return j.ResponseWriter.Write(p)
	}
	return j.body.Write(p)
}

func (j *jsonErrors) Unwrap() http.ResponseWriter { return j.ResponseWriter }

// finish writes a held error as JSON.
func (j *jsonErrors) finish() {
	if j.status == 0 {
		return
	}
	code := "bad_request"
	switch j.status {
	case http.StatusUpgradeRequired:
		code = "upgrade_required"
	case http.StatusForbidden:
		code = origin.CodeForbiddenOrigin
	case http.StatusMethodNotAllowed:
		code = "method_not_allowed"
	}
	h := j.ResponseWriter.Header()
	h.Del("X-Content-Type-Options")
	httpError(j.ResponseWriter, j.status, code, strings.TrimSpace(j.body.String()))
}
