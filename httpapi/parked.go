package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/session"
)

// A long-poll that must wait, over HTTP/1.1 on a Listener, waits with no
// goroutine: the handler hijacks its connection and returns, the wait is
// parked in the session core (session.PollWait), and the connection is
// watched for something to read (readiness) instead of being read by a
// goroutine. The answer is written on the raw connection as net/http
// would have written it (status, the headers a middleware set before the
// hijack, Content-Type, Cache-Control, Date, Content-Length, body), and
// the connection goes back to net/http (Listener) once its next request
// starts to arrive: between polls it costs no goroutine either.
//
// While parked, what the client sends is read as net/http's background
// read would: a pipelined request is kept (up to maxPipelined bytes, then
// reading stops, as net/http's does after one byte) and served after the
// answer; a reset ends the long-poll at once (reset); a FIN is probed as
// conn.Watch does, with informational 102 responses: a client that fully
// closed answers them with RST and the long-poll ends (closed), one that
// only half-closed reads them, and then its answer (half-closed), after
// which the connection is closed.

// processing is the probe: RFC 9110 §15.2 lets a server send any number
// of 1xx responses before the final one to an HTTP/1.1 client.
var processing = []byte("HTTP/1.1 102 Processing\r\n\r\n")

// parkedPoll is a long-poll parked on its hijacked connection.
type parkedPoll struct {
	h          hijacked
	a          *API
	l          *Listener
	s          *session.Session
	head       []byte // the headers set before the hijack, as written
	channel    string
	remote     string
	closeAfter bool // the request asked for Connection: close

	mu    sync.Mutex
	done  bool        // guarded by mu: the connection was handed back or closed
	idleT *time.Timer // guarded by mu
}

// parkPoll parks wait on w's hijacked connection and reports true, when
// the request allows it: HTTP/1.1 through a Listener that is open. It
// reports false, with nothing done, otherwise: the handler waits on its
// goroutine.
func (a *API) parkPoll(w http.ResponseWriter, r *http.Request, s *session.Session, wait *session.PollWait) bool {
	l := listenerFrom(r.Context())
	if l == nil || r.ProtoMajor != 1 || r.ProtoMinor < 1 || !l.open() {
		return false
	}
	var head bytes.Buffer
	w.Header().Write(&head)
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	pp := &parkedPoll{
		a: a, l: l, s: s, head: head.Bytes(),
		channel: r.PathValue("channel"), remote: r.RemoteAddr, closeAfter: r.Close,
	}
	pp.h = hijacked{c: c, keep: true, probe: processing, left: pp.left, idle: pp.handBack}
	var in []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		in = bytes.Clone(b)
	}
	if slot := slotFrom(r.Context()); slot != nil {
		slot.parked = true // the request's end is the parked poll's to record
	}
	// Watched first: a departure seen before the wait parks ends the
	// session, and Park answers at once.
	if err := pp.h.watch(in); err != nil {
		// Not a socket after all: its departure is seen when the answer
		// is written.
		pp.a.log.Debug("long-poll: no readiness", "err", err)
	}
	wait.Park(pp.answered)
	return true
}

// left: the client left while its long-poll waited; the wait answers
// with the session's end.
func (pp *parkedPoll) left(reason conn.Reason, _ time.Duration) {
	pp.s.End(reason)
}

// answered is the parked long-poll's outcome (session.PollWait.Park's
// done): it answers on the connection, records the request's end, and
// keeps the connection alive for the next request when it can.
func (pp *parkedPoll) answered(ans session.PollAnswer, err error) {
	e := pp.h.end()
	gone := e.Reason != conn.ReasonCompleted && e.Reason != conn.ReasonHalfClosed
	if gone {
		e.Err = err
	}
	eof, t0 := pp.h.finRead()
	// A tls.Conn cannot take bytes back: net/http would serve the next
	// request on a wrapper, without its TLS state (r.TLS).
	replay := isTLS(pp.h.c) && pp.h.pending()
	keep := !gone && !eof && !pp.closeAfter && !replay && pp.l.open()
	rw := &rawResponse{}
	if !keep {
		rw.Header().Set("Connection", "close")
	}
	pp.a.answerPoll(rw, pp.s, ans, err, gone, func(err error) {
		ae := pp.a.storeError(err)
		switch ae.Code {
		case CodeInternal:
			pp.a.log.Error("storage failed", "method", http.MethodGet, "channel", pp.channel, "err", err)
		case CodeStorageFull:
			rw.Header().Set("Retry-After", "5")
		}
		writeError(rw, ae)
	})
	keep = keep && rw.Header().Get("Connection") != "close"
	var werr error
	if rw.status != 0 {
		pp.s.Release()
		werr = pp.h.write(rw.bytes(pp.head))
	}
	if !eof {
		// Recorded once the answer is out: the Registry's lock, which a
		// fan-out's answers all take, does not delay them.
		pp.finish(e)
	} else {
		// After a FIN, the answer is the last probe: a client that
		// fully closed answered an earlier one with RST, and this write
		// fails; one that reads got it (half-closed).
		switch {
		case gone:
		case werr != nil:
			e = conn.End{Reason: conn.ReasonClosed, Noticed: time.Since(t0), Err: werr}
		default:
			e = conn.End{Reason: conn.ReasonHalfClosed, Noticed: time.Since(t0), HalfClosed: true}
		}
		pp.finish(e)
	}
	if !keep || werr != nil {
		pp.close(!gone && werr == nil && rw.status != 0)
		return
	}
	pp.keepAlive()
}

// finish records the request's end.
func (pp *parkedPoll) finish(e conn.End) {
	pp.s.Finish(e)
	pp.a.endedParked(pp.channel, pp.remote, e)
}

// keepAlive waits for the next request without a goroutine, up to the
// Listener's IdleTimeout; one already read goes back to net/http at once.
func (pp *parkedPoll) keepAlive() {
	pp.h.rmu.Lock() // a read of the connection in progress finishes first
	defer pp.h.rmu.Unlock()
	if pp.h.pending() {
		pp.handBack()
		return
	}
	if !pp.l.addIdle(pp) {
		pp.close(true) // the listener closed meanwhile
		return
	}
	pp.mu.Lock()
	pp.idleT = time.AfterFunc(pp.l.idleTimeout(), pp.closeIdle)
	pp.mu.Unlock()
	if pp.h.idleNext() != nil {
		pp.handBack()
	}
}

// leaveIdle takes the connection out of its wait for the next request:
// its idle timer, the listener's idle set, the watch. It reports false if
// another path (hand-back, idle close) took it first.
func (pp *parkedPoll) leaveIdle() bool {
	pp.mu.Lock()
	if pp.done {
		pp.mu.Unlock()
		return false
	}
	pp.done = true
	if pp.idleT != nil {
		pp.idleT.Stop()
	}
	pp.mu.Unlock()
	pp.l.removeIdle(pp)
	pp.h.stop()
	return true
}

// handBack gives the connection back to net/http for its next request;
// pp.h.rmu is held.
func (pp *parkedPoll) handBack() {
	if !pp.leaveIdle() {
		return
	}
	c := pp.h.c
	c.SetDeadline(time.Time{})
	if !pp.l.handBack(c, pp.h.take()) {
		conn.CloseConn(c, conn.CloseGraceful)
	}
}

// closeIdle closes a connection whose next request did not come in time,
// or whose listener closed.
func (pp *parkedPoll) closeIdle() {
	if pp.leaveIdle() {
		pp.h.c.Close()
	}
}

// close closes the connection: gracefully after an answer (the client
// reads it all), else at once.
func (pp *parkedPoll) close(graceful bool) {
	pp.mu.Lock()
	pp.done = true
	pp.mu.Unlock()
	pp.h.stop()
	if graceful {
		conn.CloseConn(pp.h.c, conn.CloseGraceful)
		return
	}
	pp.h.c.Close()
}

// endedParked counts and logs a parked long-poll's end, as Watch's OnEnd
// does a handler's.
func (a *API) endedParked(channel, remote string, e conn.End) {
	a.endedAs("poll", channel, remote, context.Background(), e)
}

// rawResponse is an http.ResponseWriter that collects one answer, for a
// hijacked connection.
type rawResponse struct {
	h      http.Header
	status int
	body   []byte
}

func (r *rawResponse) Header() http.Header {
	if r.h == nil {
		r.h = http.Header{}
	}
	return r.h
}

func (r *rawResponse) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *rawResponse) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	r.body = append(r.body, b...)
	return len(b), nil
}

// bytes is the answer as net/http writes it: status line, head (headers
// written before), the handler's headers with Date and Content-Length,
// and the body.
func (r *rawResponse) bytes(head []byte) []byte {
	h := r.Header()
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.Itoa(len(r.body)))
	var b bytes.Buffer
	b.Grow(len(head) + 256 + len(r.body))
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(r.status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(r.status))
	b.WriteString("\r\n")
	b.Write(head)
	h.Write(&b)
	b.WriteString("\r\n")
	b.Write(r.body)
	return b.Bytes()
}
