package ws

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/framebuf"
	"github.com/tether-run/tether/internal/wsframe"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/wire"
)

// wsConn is one WebSocket connection as the session core sees it
// (session.FramedTransport): a text or binary message is a frame of the
// protocol. It reads with a wsframe.Reader straight from the socket and
// writes the frames itself: the data frames the session's writer sends,
// gathered into one write(2) per wake-up, and the control frames (pong,
// close), each a single write, serialised with them by wmu.
//
// Between frames it holds no buffer: the reader borrows one for a message
// and gives it back before it waits for the next, and the batch of
// outgoing frames holds one only until it is written.
type wsConn struct {
	nc    net.Conn
	src   source
	limit int
	out   framebuf.Batch // the session writer's

	rmu sync.Mutex // held while reading: by the session's reader, or by a goodbye waiting for the peer's close
	rd  *wsframe.Reader

	wmu       sync.Mutex // held for one write to nc
	closeSent bool       // guarded by wmu: no frame follows a close frame (RFC 6455 §5.5.1)

	peerClosed atomic.Bool // the peer's close frame arrived
	// code is the close status a protocol error calls for (1009, 1007),
	// set by the reader before the session decides the end; 0: 1008.
	code atomic.Int32
}

func newConn(nc net.Conn, pending []byte, limit int) *wsConn {
	c := &wsConn{nc: nc, limit: limit}
	c.src = source{nc: nc, pending: pending}
	c.src.budget.Store(-1)
	_, c.src.tls = nc.(*tls.Conn)
	c.src.rc = socketOf(nc)
	c.rd = wsframe.NewReader(&c.src, limit)
	return c
}

// source is what the frame reader reads: the bytes net/http had read past
// the request, then the socket; once the connection is closing, no more
// than closeBudget bytes.
type source struct {
	nc      net.Conn
	pending []byte          // read before nc; the reader's (under wsConn.rmu)
	one     [1]byte         // a byte a probe of a TLS connection took
	tls     bool            // nc may hold bytes its socket no longer shows
	rc      syscall.RawConn // nc's socket, nil if unknown
	// budget is what may still be read once closing, -1 before. Only the
	// reader lowers it.
	budget atomic.Int64
}

// closeBudget is what a connection reads once it is closing: enough for
// the rest of a small frame and the peer's close frame, not for a stream.
const closeBudget = 4 << 10

var errClosing = errors.New("tether: ws: closing: no more reads")

// stop caps what is read from now on (see closeBudget).
func (s *source) stop() { s.budget.CompareAndSwap(-1, closeBudget) }

func (s *source) Read(p []byte) (int, error) {
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		if s.pending = s.pending[n:]; len(s.pending) == 0 {
			s.pending = nil
		}
		return n, nil
	}
	b := s.budget.Load()
	if b == 0 {
		return 0, errClosing
	}
	if b > 0 && int64(len(p)) > b {
		p = p[:b]
	}
	n, err := s.nc.Read(p)
	if b > 0 {
		s.budget.Add(-int64(n))
	}
	return n, err
}

// aLongTimeAgo is a read deadline already past: a read with it returns at
// once what the connection holds, or a timeout.
var aLongTimeAgo = time.Unix(1, 0)

// probe reports whether a TLS connection holds bytes, already decrypted
// or read from the socket, that the socket no longer shows as readable:
// it reads one byte without waiting and keeps it in pending.
func (s *source) probe() bool {
	s.nc.SetReadDeadline(aLongTimeAgo)
	n, _ := s.nc.Read(s.one[:])
	s.nc.SetReadDeadline(time.Time{})
	if n == 0 {
		return false
	}
	s.pending = s.one[:1]
	return true
}

// ReadFrame reads one message, text or binary, or a ping, which it
// answers with a pong, or a pong; after a ping or pong that is not between
// the fragments of a message it returns nil (the pongs do not count for
// the protocol's heartbeat, docs/protocol.md). The buffer of the previous
// message goes back to its pool first, so a connection waiting for a
// frame holds none.
func (c *wsConn) ReadFrame(context.Context) ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		op, p, err := c.rd.Next()
		if err != nil {
			return nil, c.readErr(err)
		}
		switch op {
		case wsframe.OpPing, wsframe.OpPong:
			if op == wsframe.OpPing {
				var b [2 + wsframe.MaxControl]byte
				c.writeControl(wsframe.AppendControl(b[:0], wsframe.OpPong, p)) // a failure shows on the next read or write
			}
			if !c.rd.Pending() {
				// Not between the fragments of a message: nothing to
				// dispatch, and the session looks (Buffered) before it
				// reads again, so a lone ping leaves no reader waiting.
				return nil, nil
			}
		case wsframe.OpClose:
			return nil, c.peerClose(p)
		default:
			if !utf8.Valid(p) {
				// RFC 6455 §8.1: text must be UTF-8, and §7.4.1 names 1007
				// for data inconsistent with its type; tether's frames are
				// JSON text in either message type.
				c.code.Store(wsframe.CloseInvalidData)
				return nil, wire.ErrInvalidUTF8
			}
			return p, nil
		}
	}
}

// Buffered reports whether the connection holds bytes of the client's it
// has not handed on, which no readiness of the socket would announce: the
// bytes net/http had read past the handshake, or, on TLS, bytes the TLS
// layer holds. It also reports bytes waiting in the socket (Linux): the
// reader reads frames exactly, so a burst of frames is still in the
// socket after the first, and reading on beats arming readiness and
// waking at once (a burst of 100 requests: 2.2 ms -> 0.96 ms). It gives
// back the buffer of the message ReadFrame last returned.
func (c *wsConn) Buffered() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rd.Release()
	switch {
	case len(c.src.pending) > 0, c.rd.Pending():
		return true
	case c.src.budget.Load() >= 0: // closing: nothing more is read
		return false
	case c.src.tls && c.src.probe():
		return true
	}
	return c.src.rc != nil && unread(c.src.rc)
}

// readErr turns the reader's error into the session's: a message too
// large is session.ErrFrameTooLarge (the session answers frame_too_large
// and aborts with 1009); another violation of RFC 6455 is answered here
// with a close frame of its status (1002, 1007), and nothing more is read.
func (c *wsConn) readErr(err error) error {
	var we *wsframe.Error
	if !errors.As(err, &we) {
		return err
	}
	if we.Code == wsframe.CloseTooBig {
		c.code.Store(wsframe.CloseTooBig)
		return fmt.Errorf("%w: %w", session.ErrFrameTooLarge, err)
	}
	c.src.stop()
	c.nc.SetWriteDeadline(time.Now().Add(abortWait))
	c.writeClose(we.Code, we.Msg)
	return err // the session ends the connection (protocol-error) and closes it
}

// closeError is the peer's close frame: an orderly end.
type closeError struct{ code int }

func (e *closeError) Error() string {
	return "websocket: the peer closed with status " + strconv.Itoa(e.code)
}

// peerClose answers the peer's close frame with one of the same status
// (RFC 6455 §5.5.1), unless the server's went first.
func (c *wsConn) peerClose(p []byte) error {
	code, _, err := wsframe.ParseClose(p)
	if err != nil {
		return c.readErr(err)
	}
	c.peerClosed.Store(true)
	c.writeClose(code, "")
	return &closeError{code}
}

// writeControl writes one control frame, unless a close frame went out.
func (c *wsConn) writeControl(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	_, err := c.nc.Write(frame)
	return err
}

// writeClose writes the connection's one close frame; it reports false
// if one went out before.
func (c *wsConn) writeClose(code int, reason string) bool {
	var b [2 + wsframe.MaxControl]byte
	frame := wsframe.AppendClose(b[:0], code, reason)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return false
	}
	c.closeSent = true
	c.nc.Write(frame)
	return true
}

// WriteFrame adds frame to the batch as one unfragmented text frame,
// unmasked as a server's are (RFC 6455 §5.1, §5.2), and writes the batch
// when flush says nothing more is queued or it has grown to
// framebuf.FlushAt. Once a close frame went out, data is dropped.
func (c *wsConn) WriteFrame(_ context.Context, frame []byte, flush bool) error {
	if frame != nil {
		var hdr [10]byte
		c.out.Write(wsframe.AppendHeader(hdr[:0], wsframe.OpText, len(frame)))
		c.out.Write(frame)
	}
	if !flush && c.out.Len() < framebuf.FlushAt {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		c.out.Discard()
		return nil
	}
	return c.out.Flush(c.nc)
}

// closeWait bounds the close handshake: past it the connection is reset.
const closeWait = time.Second

// CloseGracefully sends a close frame (RFC 6455 §5.5.1) with a status for
// the reason and waits up to closeWait for the peer's, reading no more
// than closeBudget meanwhile (data that comes first is dropped: the end
// is decided); then it resets. The session's reader, if it is reading,
// may be the one that reads the peer's close frame.
func (c *wsConn) CloseGracefully(reason conn.Reason) error {
	code := wsframe.CloseNormal
	switch reason {
	case conn.ReasonShutdown:
		code = wsframe.CloseGoingAway
	case conn.ReasonProtocolError, conn.ReasonSlowConsumer, session.ReasonTokenExpired:
		code = wsframe.ClosePolicyViolation
	}
	c.src.stop()
	deadline := time.Now().Add(closeWait)
	c.nc.SetWriteDeadline(deadline)
	c.writeClose(code, string(reason))
	c.nc.SetReadDeadline(deadline) // a reader stopped mid-frame gives up by then
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.nc.SetReadDeadline(deadline) // again: a TLS probe may have cleared it
	for !c.peerClosed.Load() {
		op, _, err := c.rd.Next()
		if err != nil {
			conn.CloseConn(c.nc, conn.CloseReset)
			return err
		}
		if op == wsframe.OpClose {
			c.peerClosed.Store(true)
		}
	}
	return nil
}

// abortWait bounds the write of the close frame after a protocol error.
const abortWait = 250 * time.Millisecond

// Abort implements session.Aborter: after a protocol error nothing more
// is read, so it writes the close frame (1009 for a frame too large, 1007
// for invalid UTF-8, else 1008) within abortWait, and resets. The
// session's writer has stopped.
func (c *wsConn) Abort(reason conn.Reason) error {
	c.src.stop()
	code := int(c.code.Load())
	if code == 0 {
		code = wsframe.ClosePolicyViolation
	}
	c.nc.SetWriteDeadline(time.Now().Add(abortWait))
	c.writeClose(code, string(reason))
	return conn.CloseConn(c.nc, conn.CloseReset)
}

func (c *wsConn) Format() session.Format { return session.JSON }
func (c *wsConn) NetConn() net.Conn      { return c.nc }

// Close releases the connection at once; a reader blocked on it returns
// (and gives back its buffer).
func (c *wsConn) Close() error {
	c.src.stop()
	return c.nc.Close()
}

// Reason: a close frame from the peer is an orderly close; a frame that
// breaks RFC 6455 is a protocol error.
func (c *wsConn) Reason(err error) conn.Reason {
	var ce *closeError
	var we *wsframe.Error
	switch {
	case errors.As(err, &ce):
		return conn.ReasonClosed
	case errors.As(err, &we):
		return conn.ReasonProtocolError
	}
	return session.ReasonOf(err)
}
