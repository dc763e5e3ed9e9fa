package ws

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/tether-run/tether/session"
)

// frameGuard sits between the socket and coder/websocket's reader and
// enforces the frame size limit from each frame's header (RFC 6455 §5.2),
// before a byte of payload is read.
//
// The library's SetReadLimit counts payload bytes as they are read: a
// header claiming 2^40 bytes is accepted, and the reader then waits for,
// or reads and discards, whatever follows (its close handshake even reads
// the rest of the frame without a deadline). The guard instead parses
// every header as it passes, adds the payload lengths of the frames of one
// message, and once a message would exceed the limit it stops: the header
// is not handed on, and every later Read fails with the same error, so
// neither the library nor its close handshake reads another byte.
//
// One goroutine reads at a time (the library's read lock); stop may be
// called from any.
type frameGuard struct {
	r     io.Reader
	limit int64

	// The parser's state, used by the reading goroutine only.
	hdr     [14]byte
	hdrLen  int   // bytes of hdr filled
	hdrOut  int   // bytes of hdr handed on
	payload int64 // payload bytes of the current frame not yet handed on
	msgLen  int64 // payload bytes of the current data message so far

	mu  sync.Mutex
	err error // guarded by mu; once set, sticky
	// budget, once stopping, is what may still be read (guarded by mu):
	// a goodbye may need the peer's close frame, not a stream.
	budget int64
	capped bool // guarded by mu
}

// closeBudget is what the guard lets through after stop: enough for the
// rest of a small frame and the peer's close frame, not for a stream.
const closeBudget = 4 << 10

// errTooLarge is the guard's error for a message over the limit.
func errTooLarge(n, limit int64) error {
	return fmt.Errorf("%w: a frame header claims %d bytes, over %d", session.ErrFrameTooLarge, n, limit)
}

func newFrameGuard(r io.Reader, limit int) *frameGuard {
	return &frameGuard{r: r, limit: int64(limit)}
}

// stop caps what is read from now on (see closeBudget).
func (g *frameGuard) stop() {
	g.mu.Lock()
	if !g.capped {
		g.capped, g.budget = true, closeBudget
	}
	g.mu.Unlock()
}

// failed returns the guard's sticky error, if any.
func (g *frameGuard) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *frameGuard) fail(err error) error {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	err = g.err
	g.mu.Unlock()
	return err
}

// allow takes n bytes from the budget once stopping, and says how many
// may be read.
func (g *frameGuard) allow(n int) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	if !g.capped {
		return n, nil
	}
	if g.budget <= 0 {
		g.err = fmt.Errorf("ws: closing: no more reads")
		return 0, g.err
	}
	return int(min(int64(n), g.budget)), nil
}

func (g *frameGuard) spent(n int) {
	g.mu.Lock()
	if g.capped {
		g.budget -= int64(n)
	}
	g.mu.Unlock()
}

func (g *frameGuard) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if g.hdrOut < g.hdrLen { // a checked header, being handed on
		n := copy(p, g.hdr[g.hdrOut:g.hdrLen])
		g.hdrOut += n
		return n, nil
	}
	if g.payload == 0 {
		if err := g.readHeader(); err != nil {
			return 0, err
		}
		n := copy(p, g.hdr[:g.hdrLen])
		g.hdrOut = n
		return n, nil
	}
	want, err := g.allow(int(min(int64(len(p)), g.payload)))
	if err != nil {
		return 0, err
	}
	n, err := g.r.Read(p[:want])
	g.payload -= int64(n)
	g.spent(n)
	return n, err
}

// readHeader reads and checks the next frame header into hdr.
func (g *frameGuard) readHeader() error {
	g.hdrLen, g.hdrOut = 0, 0
	if err := g.fill(2); err != nil {
		return err
	}
	opcode := g.hdr[0] & 0x0f
	need := 2
	switch g.hdr[1] & 0x7f {
	case 126:
		need += 2
	case 127:
		need += 8
	}
	if g.hdr[1]&0x80 != 0 {
		need += 4 // the mask key
	}
	if err := g.fill(need); err != nil {
		return err
	}
	var n int64
	switch l := g.hdr[1] & 0x7f; l {
	case 126:
		n = int64(binary.BigEndian.Uint16(g.hdr[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(g.hdr[2:10])
		if u > 1<<62 {
			return g.fail(errTooLarge(int64(1<<62), g.limit))
		}
		n = int64(u)
	default:
		n = int64(l)
	}
	switch {
	case opcode >= 8: // control frames: at most 125 bytes, the library checks
		if n > 125 {
			return g.fail(fmt.Errorf("ws: a control frame claims %d bytes", n))
		}
	case opcode == 0: // continuation
		g.msgLen += n
	default:
		g.msgLen = n
	}
	if opcode < 8 && g.msgLen > g.limit {
		return g.fail(errTooLarge(g.msgLen, g.limit))
	}
	g.payload = n
	return nil
}

// fill reads hdr up to n bytes.
func (g *frameGuard) fill(n int) error {
	for g.hdrLen < n {
		want, err := g.allow(n - g.hdrLen)
		if err != nil {
			return err
		}
		m, err := g.r.Read(g.hdr[g.hdrLen : g.hdrLen+want])
		g.hdrLen += m
		g.spent(m)
		if err != nil {
			if err == io.EOF && g.hdrLen > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// guardedConn is the net.Conn handed to the library: reads go through
// the guard, writes one at a time (the library's control frames and the
// transport's data batches may come from different goroutines, and each
// Write is one whole frame or batch), everything else to the socket.
type guardedConn struct {
	net.Conn
	g   *frameGuard
	wmu sync.Mutex // held for one Write
}

func (c *guardedConn) Read(p []byte) (int, error) { return c.g.Read(p) }

func (c *guardedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.Write(p)
}
