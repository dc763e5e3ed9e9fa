package conn

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
)

// max1xx caps the informational probes per request, the handler's own 1xx
// responses included. RFC 9110 §15.2 obliges clients to parse any number,
// but Go's http.Client failed a request after more than five until
// golang/go#65035 (Go 1.26 limits their total header bytes instead), and
// CPython and Ruby cap them at 100.
const max1xx = 4

// responseWriter serialises the handler's writes with Watch's probes, so
// that a probe never runs concurrently with, or in the middle of, the
// handler's use of the real http.ResponseWriter, which is not safe for
// concurrent use.
type responseWriter struct {
	w http.ResponseWriter
	// header is the handler's header map, made on the handler's first
	// call to Header (a waiting long-poll never makes one) as a copy of
	// what a middleware outside Watch set (CORS, Vary), which belongs to
	// the final response too. The handler's own fields reach the real map
	// only when it commits its status, because net/http writes the real
	// map with every 1xx (RFC 8297 semantics): a probe must neither leak
	// the handler's half-built headers nor race with the handler filling
	// them. Nil until made: the real map then holds the whole header.
	header http.Header
	kick   chan<- struct{}
	wt     *watcher // for tests, which wait for its verdicts instead of sleeping
	can1xx bool     // HTTP/1.1 or later: RFC 9110 §15.2 forbids 1xx to HTTP/1.0
	isHEAD bool

	mu        sync.Mutex
	committed bool   // guarded by mu: the final status was passed on
	fillerOK  bool   // guarded by mu: extra body bytes are harmless here
	filler    []byte // guarded by mu
	n1xx      int    // guarded by mu
	hijacked  bool   // guarded by mu
	finished  bool   // guarded by mu: the handler returned; probes are off
}

func newResponseWriter(w http.ResponseWriter, r *http.Request, kick chan<- struct{}) *responseWriter {
	return &responseWriter{
		w:      w,
		kick:   kick,
		can1xx: r.ProtoAtLeast(1, 1),
		isHEAD: r.Method == http.MethodHead,
	}
}

// Header returns the handler's header map (see responseWriter.header).
// Called by the handler's goroutine only, as net/http's is; a concurrent
// probe only reads the real map, as the copy does.
func (rw *responseWriter) Header() http.Header {
	if rw.header == nil {
		rw.header = rw.w.Header().Clone()
		if rw.header == nil {
			rw.header = http.Header{}
		}
	}
	return rw.header
}

// toReal makes the real header map the handler's final one; with no map
// of the handler's it already is.
func (rw *responseWriter) toReal() {
	if rw.header != nil {
		copyHeader(rw.w.Header(), rw.header)
	}
}

func (rw *responseWriter) WriteHeader(code int) {
	rw.mu.Lock()
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols && !rw.committed {
		rw.Header() // the real map is cleared below: keep what it held
		h := rw.w.Header()
		copyHeader(h, rw.header)
		rw.w.WriteHeader(code)
		clear(h) // the handler's map keeps them for the final response
		rw.n1xx++
	} else {
		rw.commitLocked(code)
	}
	rw.mu.Unlock()
	rw.poke()
}

// commitLocked passes the final status on; a second call reaches net/http,
// which logs it as superfluous.
func (rw *responseWriter) commitLocked(code int) {
	if !rw.committed {
		rw.committed = true
		rw.toReal()
		rw.fillerOK = bodyAllowed(code) && !rw.isHEAD && rw.w.Header().Get("Content-Length") == ""
	}
	rw.w.WriteHeader(code)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	if !rw.committed {
		rw.commitLocked(http.StatusOK)
	}
	n, err := rw.w.Write(p)
	rw.mu.Unlock()
	rw.poke()
	return n, err
}

// Flush implements http.Flusher.
func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (rw *responseWriter) FlushError() error {
	rw.mu.Lock()
	if !rw.committed {
		rw.commitLocked(http.StatusOK)
	}
	err := flush(rw.w)
	rw.mu.Unlock()
	rw.poke()
	return err
}

// Hijack implements http.Hijacker; Watch stops probing a hijacked
// connection but still cancels the context when the peer leaves.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	c, buf, err := http.NewResponseController(rw.w).Hijack()
	if err == nil {
		rw.hijacked = true
	}
	return c, buf, err
}

// Unwrap lets http.ResponseController reach the methods not defined here
// (SetReadDeadline, SetWriteDeadline, EnableFullDuplex). Writing to the
// unwrapped writer bypasses the lock: don't.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }

// poke tells a running monitor that data may be on its way to the peer.
func (rw *responseWriter) poke() {
	select {
	case rw.kick <- struct{}{}:
	default:
	}
}

// probe sends bytes that stay valid HTTP, so that a peer that has fully
// closed answers with RST. It reports whether anything is on its way: if
// the handler is writing right now its write serves as the probe.
func (rw *responseWriter) probe() bool {
	if !rw.mu.TryLock() {
		return true
	}
	defer rw.mu.Unlock()
	switch {
	case rw.finished || rw.hijacked:
		return false
	case !rw.committed:
		if !rw.can1xx || rw.n1xx >= max1xx {
			return false
		}
		rw.n1xx++
		// Go >= 1.19 writes and flushes a 1xx at once; the real header
		// map is empty here, so this is "HTTP/1.1 102 Processing\r\n\r\n".
		rw.w.WriteHeader(http.StatusProcessing)
		return true
	case rw.fillerOK && len(rw.filler) > 0:
		if _, err := rw.w.Write(rw.filler); err != nil {
			return false
		}
		return flush(rw.w) == nil
	}
	return false
}

// finish stops probes and hands net/http the handler's final header map,
// which it reads after the handler for trailers (or for the whole header
// if the handler wrote nothing).
func (rw *responseWriter) finish() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.finished = true
	if !rw.hijacked {
		rw.toReal()
	}
}

// SetFiller declares b a no-op in the body of w's response (":\n" for
// SSE, " " between JSON values): once the response has started, Watch
// probes with b instead of a 1xx response, without limit. Watch may write b
// between any two of the handler's Write calls, so make each Write end at a
// point where b is harmless (whole SSE lines; never inside a JSON string).
// It is ignored when w is not from Watch, and for responses that carry no
// body or declare a Content-Length. Set a Content-Type too: b may be the
// first body bytes net/http sniffs.
func SetFiller(w http.ResponseWriter, b []byte) {
	for {
		switch t := w.(type) {
		case *responseWriter:
			t.mu.Lock()
			t.filler = bytes.Clone(b)
			t.mu.Unlock()
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return
		}
	}
}

func flush(w http.ResponseWriter) error {
	err := http.NewResponseController(w).Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// copyHeader makes dst a deep copy of src.
func copyHeader(dst, src http.Header) {
	clear(dst)
	for k, v := range src {
		dst[k] = slices.Clone(v)
	}
}

// bodyAllowed mirrors net/http's rule (RFC 9110 §6.4.1).
func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199) && code != http.StatusNoContent && code != http.StatusNotModified
}
