package httpapi

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tether-run/tether/conn"
)

// hijacked is a connection taken from net/http (a long-poll that waits,
// an SSE stream) while the server has the floor. No goroutine reads it:
// conn.Ready says when the client sent something, and readable reads
// what is there without waiting for more, as net/http's background read
// would: bytes are kept (a long-poll's pipelined request) or discarded
// (SSE), up to maxPipelined, after which reading stops, as net/http's
// does, until the server is done; a reset ends the request (left) at
// once; a FIN is probed, as conn.Watch does, with writes that keep the
// response valid (probe): a client that fully closed answers one with
// RST and the next write fails (closed); one that only half-closed reads
// them (half-closed) and goes on getting its response.
//
// Locks: rmu (reading), then wmu (writing), then mu.
type hijacked struct {
	c     net.Conn
	rdy   *conn.Ready
	keep  bool                             // keep what is read, else discard it
	probe []byte                           // written after a FIN
	left  func(conn.Reason, time.Duration) // the client left: end the request
	idle  func()                           // readable once done watching (quiet); nil: nothing

	rmu   sync.Mutex // held while the connection is read
	armed bool       // guarded by rmu: readiness was asked for and has not fired

	// wmu serialises every write of the response: the server's and the
	// probes.
	wmu sync.Mutex

	mu         sync.Mutex
	quiet      bool          // guarded by mu: the request is done (end): nothing more is read
	idling     bool          // guarded by mu: the response is out: readable calls idle
	in         []byte        // guarded by mu: what was read (keep)
	read       int           // guarded by mu: bytes read in all
	eof        bool          // guarded by mu: the client's FIN was read
	t0         time.Time     // guarded by mu: when it was
	probes     int           // guarded by mu
	probeT     *time.Timer   // guarded by mu
	gone       conn.Reason   // guarded by mu: the client left; "" if not
	halfClosed bool          // guarded by mu
	noticed    time.Duration // guarded by mu
}

// maxPipelined bounds what is read from a hijacked connection while the
// server answers: net/http's own read buffer.
const maxPipelined = 4 << 10

// probeGaps are the waits before the second and third probe after a FIN.
var probeGaps = [...]time.Duration{100 * time.Millisecond, time.Second}

// watch starts watching h.c; in is what net/http had read already.
func (h *hijacked) watch(in []byte) error {
	h.mu.Lock()
	if h.keep {
		h.in = in
	}
	h.read = len(in)
	h.mu.Unlock()
	rdy, err := conn.NewReady(h.c, h.readable)
	if err != nil {
		return err
	}
	h.rmu.Lock()
	defer h.rmu.Unlock()
	h.rdy = rdy // before any use: the caller publishes h after watch
	if isTLS(h.c) {
		go h.readable() // decrypted bytes the socket no longer shows
		return nil
	}
	if len(in) < maxPipelined {
		h.arm()
	}
	return nil
}

// arm asks for readable once the connection has something to read;
// h.rmu is held.
func (h *hijacked) arm() error {
	if h.armed {
		return nil
	}
	if err := h.rdy.Arm(); err != nil {
		return err
	}
	h.armed = true
	return nil
}

// readable runs when the connection has something to read.
func (h *hijacked) readable() {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	h.armed = false
	h.mu.Lock()
	quiet, idling := h.quiet, h.idling
	h.mu.Unlock()
	switch {
	case idling:
		h.idle()
	case !quiet:
		h.readSome()
	}
}

// readSome reads what the client sent without waiting for more, and
// watches on unless reading must stop. h.rmu is held.
func (h *hijacked) readSome() {
	var b [1024]byte
	t0 := time.Now()
	for {
		h.mu.Lock()
		room, quiet := maxPipelined-h.read, h.quiet
		h.mu.Unlock()
		if quiet {
			// Answering: what comes now is the next request, net/http's
			// to read (idling).
			h.c.SetReadDeadline(time.Time{})
			return
		}
		if room <= 0 {
			return // stop reading, as net/http does
		}
		// Readiness said there is something: the deadline only bounds a
		// TLS record that is not all in yet.
		h.c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, err := h.c.Read(b[:min(room, len(b))])
		h.mu.Lock()
		h.read += n
		if h.keep {
			h.in = append(h.in, b[:n]...)
		}
		h.mu.Unlock()
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			h.c.SetReadDeadline(time.Time{})
			h.arm()
		case errors.Is(err, io.EOF):
			h.mu.Lock()
			h.eof, h.t0 = true, t0
			h.mu.Unlock()
			h.sendProbe()
		default:
			h.leave(goneReason(err, false), time.Since(t0))
		}
		return
	}
}

// sendProbe writes a probe after the client's FIN and comes back for the
// next one; a failed write means the client is gone (closed), and after
// the last probe it is taken as half-closed (it reads).
func (h *hijacked) sendProbe() {
	h.wmu.Lock()
	h.mu.Lock()
	ok := !h.quiet && h.gone == ""
	n, t0 := h.probes, h.t0
	h.probes++
	h.mu.Unlock()
	var err error
	if ok {
		_, err = h.c.Write(h.probe)
	}
	h.wmu.Unlock()
	switch {
	case !ok:
		return
	case err != nil:
		h.leave(goneReason(err, true), time.Since(t0))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.quiet:
	case n < len(probeGaps):
		h.probeT = time.AfterFunc(probeGaps[n], h.sendProbe)
	default:
		h.halfClosed, h.noticed = true, time.Since(t0)
	}
}

// leave records the client's departure once, and tells the owner.
func (h *hijacked) leave(reason conn.Reason, noticed time.Duration) {
	h.mu.Lock()
	if h.quiet || h.gone != "" {
		h.mu.Unlock()
		return
	}
	h.gone, h.noticed = reason, noticed
	h.mu.Unlock()
	h.left(reason, noticed)
}

// write writes b to the client, serialised with the probes.
func (h *hijacked) write(b []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, err := h.c.Write(b)
	return err
}

// writeBuffers writes bufs to the client as one write (writev on a TCP
// connection), serialised with the probes.
func (h *hijacked) writeBuffers(bufs net.Buffers) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if isTLS(h.c) {
		// One TLS record, not one per buffer.
		var n int
		for _, b := range bufs {
			n += len(b)
		}
		one := make([]byte, 0, n)
		for _, b := range bufs {
			one = append(one, b...)
		}
		_, err := h.c.Write(one)
		return err
	}
	_, err := bufs.WriteTo(h.c)
	return err
}

// end says how the request ended as far as the client is concerned, and
// stops the probes: from now on, readable calls idle.
func (h *hijacked) end() conn.End {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.quiet = true
	if h.probeT != nil {
		h.probeT.Stop()
	}
	switch {
	case h.gone != "":
		return conn.End{Reason: h.gone, Noticed: h.noticed}
	case h.halfClosed:
		return conn.End{Reason: conn.ReasonHalfClosed, Noticed: h.noticed, HalfClosed: true}
	}
	return conn.End{Reason: conn.ReasonCompleted}
}

// idleNext makes readable call idle from now on, and arms; h.rmu is
// held.
func (h *hijacked) idleNext() error {
	h.mu.Lock()
	h.idling = true
	h.mu.Unlock()
	if h.rdy == nil {
		return errors.ErrUnsupported
	}
	return h.arm()
}

// finRead reports whether the client's FIN was read, and since when.
func (h *hijacked) finRead() (bool, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.eof, h.t0
}

// take returns what was read and kept, and forgets it.
func (h *hijacked) take() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := h.in
	h.in = nil
	return in
}

// pending reports whether something read is kept.
func (h *hijacked) pending() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.in) > 0
}

// stop ends the watch; fn may still be running.
func (h *hijacked) stop() {
	if h.rdy != nil {
		h.rdy.Stop()
	}
}

// isTLS reports whether c is a TLS connection (handed back or not).
func isTLS(c net.Conn) bool {
	if r, ok := c.(*replayConn); ok {
		c = r.Conn
	}
	_, ok := c.(*tls.Conn)
	return ok
}

// goneReason classifies the error of a read, or of a probe written after
// the client's FIN (probe), as conn.Watch does: Linux reports ETIMEDOUT
// when keepalive or TCP_USER_TIMEOUT gave up, ECONNRESET for an RST on an
// open connection, EPIPE for an RST after the client's FIN, which is
// "closed" when a probe provoked it.
func goneReason(err error, probe bool) conn.Reason {
	switch {
	case errors.Is(err, syscall.ETIMEDOUT):
		return conn.ReasonTimeout
	case probe && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)):
		return conn.ReasonClosed
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return conn.ReasonReset
	}
	return conn.ReasonOf(err)
}
