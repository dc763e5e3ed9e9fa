package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tether-run/tether/store"
)

// readParams are a long-poll or SSE request's parameters after decoding.
type readParams struct {
	channel string
	// after is the cursor to read after; fromLatest means the client gave
	// none and wants only messages newer than the request.
	after      store.Cursor
	fromLatest bool
	wait       time.Duration
	limit      int
}

// limits bound what a read request may ask for.
type limits struct {
	defaultWait, maxWait time.Duration
	defaultLimit         int
	maxLimit             int
}

func decodeChannel(name string) *apiError {
	if !store.ValidChannel(name) {
		return errorf(http.StatusBadRequest, CodeBadChannel,
			"channel names are 1-128 bytes of letters, digits, '-', '_', '.', ':' and start with a letter or digit")
	}
	return nil
}

// decodeCursor checks the shape every cursor has on the wire. Whether the
// engine minted it is for the engine to say.
func decodeCursor(s string) (store.Cursor, *apiError) {
	if s == "" || len(s) > 256 {
		return "", errorf(http.StatusBadRequest, CodeBadCursor, "cursor must be 1-256 bytes")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return "", errorf(http.StatusBadRequest, CodeBadCursor, "cursor must be printable ASCII")
		}
	}
	return store.Cursor(s), nil
}

// decodeRead decodes the query of a long-poll or SSE request. lastEventID,
// when not empty, wins over ?after= (an EventSource reconnecting sends it).
func decodeRead(channel string, q url.Values, lastEventID string, l limits) (readParams, *apiError) {
	p := readParams{channel: channel, wait: l.defaultWait, limit: l.defaultLimit}
	if e := decodeChannel(channel); e != nil {
		return p, e
	}
	switch {
	case lastEventID != "":
		c, e := decodeCursor(lastEventID)
		if e != nil {
			return p, e
		}
		p.after = c
	case q.Has("after"):
		c, e := decodeCursor(q.Get("after"))
		if e != nil {
			return p, e
		}
		p.after = c
	default:
		p.fromLatest = true
	}
	if q.Has("wait") {
		d, ok := parseWait(q.Get("wait"))
		if !ok || d < 0 || d > l.maxWait {
			return p, errorf(http.StatusBadRequest, CodeBadWait,
				"wait must be a duration such as 30s (or a number of seconds) from 0 to "+l.maxWait.String())
		}
		p.wait = d
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > l.maxLimit {
			return p, errorf(http.StatusBadRequest, CodeBadLimit,
				"limit must be an integer from 1 to "+strconv.Itoa(l.maxLimit))
		}
		p.limit = n
	}
	return p, nil
}

// parseWait accepts a Go duration ("30s", "1m30s") or a bare number of
// seconds ("30", "0.5").
func parseWait(s string) (time.Duration, bool) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f < 0 || f > float64(1<<62)/float64(time.Second) {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// MaxIdempotencyKeyLen is the longest Idempotency-Key accepted, in bytes.
const MaxIdempotencyKeyLen = 255

func decodeIdempotencyKey(k string) *apiError {
	if len(k) > MaxIdempotencyKeyLen {
		return errorf(http.StatusBadRequest, CodeBadIdempotencyKey, "Idempotency-Key is longer than 255 bytes")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return errorf(http.StatusBadRequest, CodeBadIdempotencyKey, "Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

// decodeMessage validates a publish body and returns it compacted. Compact
// JSON has no raw newlines, so it fits an SSE data: line as it is.
func decodeMessage(body []byte) ([]byte, *apiError) {
	body = bytes.Trim(body, " \t\r\n") // JSON's white space (RFC 8259 §2), not Unicode's
	if len(body) == 0 {
		return nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "the body must be a JSON value; it is empty")
	}
	if !utf8.Valid(body) {
		return nil, errInvalidUTF8
	}
	if !hasJSONSpace(body) && json.Valid(body) {
		// Nothing to elide: the body is its own compact form. (Publishers
		// mostly send compact JSON; this saves a copy and an allocation.)
		return body, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(body))
	if err := json.Compact(&buf, body); err != nil {
		return nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	return buf.Bytes(), nil
}

// hasJSONSpace reports whether b holds any byte of JSON's white space,
// inside strings or not.
func hasJSONSpace(b []byte) bool {
	for _, c := range b {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			return true
		}
	}
	return false
}

// errInvalidUTF8 answers a body that is not UTF-8: encoding/json accepts
// invalid bytes inside strings, and would store and serve them as JSON.
var errInvalidUTF8 = errorf(http.StatusBadRequest, CodeInvalidUTF8, "the body is not valid UTF-8")

// bodyLimits bound how slowly a request body may arrive (Config.BodyGrace,
// Config.BodyMinRate): a sender that trickles a byte a second, or claims a
// chunk and stops, holds no handler.
type bodyLimits struct {
	grace time.Duration
	rate  int
}

// readBody reads a request body of at most max bytes under the body
// deadline. A body that cannot be read is answered, not taken as empty:
// 413 body_too_large, 408 body_timeout, or 400 bad_body (malformed chunked
// encoding, a body cut short); after those the connection is closed, its
// stream being out of step.
func readBody(w http.ResponseWriter, r *http.Request, max int64, l bodyLimits) ([]byte, *apiError) {
	rc := http.NewResponseController(w)
	br := &deadlineReader{r: http.MaxBytesReader(w, r.Body, max), rc: rc, start: time.Now(), l: l}
	var body []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= max {
		// The length is known: one buffer of that size, most often filled
		// by one Read (one deadline move), where io.ReadAll would start at
		// 512 bytes and read again to see the end. net/http's body reader
		// holds the sender to its Content-Length.
		body = make([]byte, n)
		_, err = io.ReadFull(br, body)
	} else {
		body, err = io.ReadAll(br)
	}
	rc.SetReadDeadline(time.Time{})
	if err == nil {
		return body, nil
	}
	w.Header().Set("Connection", "close")
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
			"the body is larger than "+strconv.FormatInt(max, 10)+" bytes")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errorf(http.StatusRequestTimeout, CodeBodyTimeout,
			"the body came slower than "+strconv.Itoa(l.rate)+" bytes a second after "+l.grace.String())
	default:
		return nil, errorf(http.StatusBadRequest, CodeBadBody, "the body could not be read: "+strings.TrimPrefix(err.Error(), "http: "))
	}
}

// deadlineReader moves the connection's read deadline as the body arrives
// (the runtime's poller: no system call per Read).
type deadlineReader struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	l     bodyLimits
	n     int64
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	allowed := d.l.grace + time.Duration(d.n)*time.Second/time.Duration(d.l.rate)
	if err := d.rc.SetReadDeadline(d.start.Add(allowed)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := d.r.Read(p)
	d.n += int64(n)
	return n, err
}

// CleanPaths answers a path that is not clean (an empty segment, as in
// /v1/channels//messages, a dot segment, a trailing slash) itself, with a
// JSON error: http.ServeMux would answer it with a bodiless redirect to
// another route.
func CleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/" || path.Clean(p) == p {
			next.ServeHTTP(w, r)
			return
		}
		if rest, ok := strings.CutPrefix(p, "/v1/channels/"); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			writeError(w, errorf(http.StatusBadRequest, CodeBadChannel, "the channel name is empty"))
			return
		}
		notFound(w, r)
	})
}
