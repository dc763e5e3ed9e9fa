package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
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

// maxPipelined bounds what is read of a parked long-poll's next request
// before its answer: net/http's own read buffer.
const maxPipelined = 4 << 10

// probeGaps are the waits before the second and third probe after a FIN.
var probeGaps = [...]time.Duration{100 * time.Millisecond, time.Second}

// processing is the probe: RFC 9110 §15.2 lets a server send any number
// of 1xx responses before the final one to an HTTP/1.1 client.
var processing = []byte("HTTP/1.1 102 Processing\r\n\r\n")

type parkState uint8

const (
	parked parkState = iota // waiting for the answer
	answering
	idle // answered; waiting for the next request
	done
)

// parkedPoll is a long-poll parked on its hijacked connection.
type parkedPoll struct {
	a          *API
	l          *Listener
	c          net.Conn
	s          *session.Session
	head       []byte // the headers set before the hijack, as written
	channel    string
	remote     string
	closeAfter bool // the request asked for Connection: close
	rdy        *conn.Ready

	rmu   sync.Mutex // held while the connection is read, and to take in
	armed bool       // guarded by rmu: readiness was asked for and has not fired
	wmu   sync.Mutex // serialises the probes and the answer

	mu         sync.Mutex
	state      parkState   // guarded by mu
	in         []byte      // guarded by mu (and rmu): the next request, read while parked
	eof        bool        // guarded by mu: the client's FIN was read
	probes     int         // guarded by mu
	probeT     *time.Timer // guarded by mu
	idleT      *time.Timer // guarded by mu
	gone       conn.Reason // guarded by mu: the client left; "" if not
	halfClosed bool        // guarded by mu
	t0         time.Time   // guarded by mu: when the FIN was read
	noticed    time.Duration
}

// parkPoll parks wait on w's hijacked connection and reports true, when
// the request allows it: HTTP/1.1 through a Listener that is open, on a
// socket whose readiness can be watched. It reports false, with nothing
// done, otherwise: the handler waits on its goroutine.
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
		a: a, l: l, c: c, s: s, head: head.Bytes(),
		channel: r.PathValue("channel"), remote: r.RemoteAddr, closeAfter: r.Close,
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pp.in = bytes.Clone(b)
	}
	if slot := slotFrom(r.Context()); slot != nil {
		slot.parked = true // the request's end is the parked poll's to record
	}
	if pp.rdy, err = conn.NewReady(c, pp.readable); err != nil {
		// Not a socket after all: wait here, and answer on c.
		ans, err := wait.Wait(context.Background())
		pp.answered(ans, err)
		return true
	}
	wait.Park(pp.answered)
	if _, isTLS := c.(*tls.Conn); isTLS {
		go pp.readable() // decrypted bytes the socket no longer shows
	} else if len(pp.in) < maxPipelined {
		pp.rmu.Lock()
		pp.arm()
		pp.rmu.Unlock()
	}
	return true
}

// arm asks for readable once the connection has something to read;
// pp.rmu is held.
func (pp *parkedPoll) arm() error {
	if pp.armed {
		return nil
	}
	if err := pp.rdy.Arm(); err != nil {
		return err
	}
	pp.armed = true
	return nil
}

// readable runs when the connection has something to read: while parked,
// it reads what the client sent; once answered, the next request has
// come and the connection goes back to net/http.
func (pp *parkedPoll) readable() {
	pp.rmu.Lock()
	defer pp.rmu.Unlock()
	pp.armed = false
	pp.mu.Lock()
	st := pp.state
	pp.mu.Unlock()
	switch st {
	case parked, answering:
		pp.readParked()
	case idle:
		pp.handBack()
	}
}

// readParked reads what the parked long-poll's client sent, without
// blocking for more, and watches on unless reading must stop.
func (pp *parkedPoll) readParked() {
	var b [1024]byte
	t0 := time.Now()
	for {
		pp.mu.Lock()
		room := maxPipelined - len(pp.in)
		pp.mu.Unlock()
		if room <= 0 {
			return // stop reading, as net/http does; the answer comes
		}
		// Readiness said there is something: a short deadline only
		// bounds a TLS record that is not all in yet.
		pp.c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, err := pp.c.Read(b[:min(room, len(b))])
		pp.mu.Lock()
		pp.in = append(pp.in, b[:n]...)
		pp.mu.Unlock()
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			pp.c.SetReadDeadline(time.Time{})
			pp.arm()
			return
		case errors.Is(err, io.EOF):
			pp.finRead(t0)
			return
		default:
			reason := conn.ReasonReset
			if !errors.Is(err, syscall.ECONNRESET) {
				reason = conn.ReasonOf(err)
			}
			pp.left(reason, time.Since(t0))
			return
		}
	}
}

// finRead: the client sent FIN. Probe it: a client that fully closed
// answers with RST, and a later write fails.
func (pp *parkedPoll) finRead(t0 time.Time) {
	pp.mu.Lock()
	pp.eof, pp.t0 = true, t0
	pp.mu.Unlock()
	pp.probe()
}

// probe writes a 102 while the long-poll waits, and comes back for the
// next probe; a failed write means the client is gone, and after the
// last probe it is taken as half-closed (it reads).
func (pp *parkedPoll) probe() {
	pp.wmu.Lock()
	pp.mu.Lock()
	ok := pp.state == parked && pp.gone == ""
	n, t0 := pp.probes, pp.t0
	pp.probes++
	pp.mu.Unlock()
	var err error
	if ok {
		_, err = pp.c.Write(processing)
	}
	pp.wmu.Unlock()
	switch {
	case !ok:
		return
	case err != nil:
		pp.left(conn.ReasonClosed, time.Since(t0))
		return
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	switch {
	case pp.state != parked:
	case n < len(probeGaps):
		pp.probeT = time.AfterFunc(probeGaps[n], pp.probe)
	default:
		pp.halfClosed, pp.noticed = true, time.Since(t0)
	}
}

// left ends the parked long-poll: its client left (reason).
func (pp *parkedPoll) left(reason conn.Reason, noticed time.Duration) {
	pp.mu.Lock()
	if pp.state != parked || pp.gone != "" {
		pp.mu.Unlock()
		return
	}
	pp.gone, pp.noticed = reason, noticed
	pp.mu.Unlock()
	pp.s.End(reason) // the wait answers with the session's end
}

// answered is the parked long-poll's outcome (session.PollWait.Park's
// done): it answers on the connection, records the request's end, and
// keeps the connection alive for the next request when it can.
func (pp *parkedPoll) answered(ans session.PollAnswer, err error) {
	pp.mu.Lock()
	pp.state = answering
	if pp.probeT != nil {
		pp.probeT.Stop()
	}
	gone, eof := pp.gone, pp.eof
	e := conn.End{Reason: conn.ReasonCompleted}
	switch {
	case gone != "":
		e = conn.End{Reason: gone, Noticed: pp.noticed, Err: err}
	case pp.halfClosed:
		e = conn.End{Reason: conn.ReasonHalfClosed, Noticed: pp.noticed, HalfClosed: true}
	}
	pp.mu.Unlock()

	rw := &rawResponse{}
	pp.mu.Lock()
	_, isTLS := pp.c.(*tls.Conn)
	replay := isTLS && len(pp.in) > 0 // a tls.Conn cannot take bytes back
	pp.mu.Unlock()
	keep := gone == "" && !eof && !pp.closeAfter && !replay && pp.l.open()
	if !keep {
		rw.Header().Set("Connection", "close")
	}
	pp.a.answerPoll(rw, pp.s, ans, err, gone != "", func(err error) {
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
	if !eof {
		// The end is recorded before the answer goes out, as net/http's
		// handler returns before its response is flushed.
		pp.finish(e)
	}
	var werr error
	if rw.status != 0 {
		pp.wmu.Lock()
		_, werr = pp.c.Write(rw.bytes(pp.head))
		pp.wmu.Unlock()
	}
	if eof {
		// After a FIN, the answer is the last probe: a client that
		// fully closed answered an earlier one with RST, and this write
		// fails; one that reads got it (half-closed).
		switch {
		case gone != "":
		case werr != nil:
			e = conn.End{Reason: conn.ReasonClosed, Noticed: time.Since(pp.t0), Err: werr}
		default:
			e = conn.End{Reason: conn.ReasonHalfClosed, Noticed: time.Since(pp.t0), HalfClosed: true}
		}
		pp.finish(e)
	}
	if !keep || werr != nil {
		pp.close(gone == "" && werr == nil && rw.status != 0)
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
	pp.rmu.Lock() // a read of the connection in progress finishes first
	defer pp.rmu.Unlock()
	pp.mu.Lock()
	pp.state = idle
	next := len(pp.in) > 0
	pp.mu.Unlock()
	if next {
		pp.handBackLocked()
		return
	}
	pp.mu.Lock()
	pp.idleT = time.AfterFunc(pp.l.idleTimeout(), pp.idleTimeout)
	pp.mu.Unlock()
	if err := pp.arm(); err != nil {
		pp.handBackLocked()
	}
}

// handBack gives the connection back to net/http for its next request.
func (pp *parkedPoll) handBack() {
	pp.handBackLocked()
}

// handBackLocked is handBack; pp.rmu is held.
func (pp *parkedPoll) handBackLocked() {
	pp.mu.Lock()
	if pp.state == done {
		pp.mu.Unlock()
		return
	}
	pp.state = done
	in := pp.in
	pp.in = nil
	if pp.idleT != nil {
		pp.idleT.Stop()
	}
	pp.mu.Unlock()
	pp.rdy.Stop()
	pp.c.SetDeadline(time.Time{})
	if !pp.l.handBack(pp.c, in) {
		conn.CloseConn(pp.c, conn.CloseGraceful)
	}
}

// idleTimeout closes a connection whose next request did not come.
func (pp *parkedPoll) idleTimeout() {
	pp.mu.Lock()
	if pp.state != idle {
		pp.mu.Unlock()
		return
	}
	pp.state = done
	pp.mu.Unlock()
	pp.rdy.Stop()
	pp.c.Close()
}

// close closes the connection: gracefully after an answer (the client
// reads it all), else at once.
func (pp *parkedPoll) close(graceful bool) {
	pp.mu.Lock()
	pp.state = done
	pp.mu.Unlock()
	if pp.rdy != nil {
		pp.rdy.Stop()
	}
	if graceful {
		conn.CloseConn(pp.c, conn.CloseGraceful)
		return
	}
	pp.c.Close()
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
