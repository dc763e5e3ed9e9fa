package httpapi

import (
	"context"
	"net"
	"sync"
	"time"
)

// Listener is the net.Listener an http.Server serving the API should
// accept on (HTTP/1.1): its Accept returns the connections the listener
// under it accepts, and the connections of long-polls that were answered
// on their hijacked socket and now go back to net/http for their next
// request. A long-poll that must wait lets go of its goroutine only when
// its request came through a Listener (BaseContext): elsewhere it waits
// on the handler's goroutine, as over HTTP/2.
//
// A handed-back connection is accepted again, so http.Server.ConnContext
// and ConnState see it anew (StateNew), and it is read with the server's
// ReadHeaderTimeout for its next request; between requests it waits
// without a goroutine, up to IdleTimeout.
type Listener struct {
	net.Listener
	// IdleTimeout closes a connection handed back with no request in
	// sight after this long (the http.Server's IdleTimeout, which it
	// cannot apply to a connection it has not got). Zero means 2 minutes.
	IdleTimeout time.Duration

	accepted chan accepted // from the accept goroutine
	wake     chan struct{} // cap 1: back has grown
	done     chan struct{} // closed by Close
	start    sync.Once
	once     sync.Once

	mu     sync.Mutex
	back   []net.Conn            // guarded by mu: handed back, not yet accepted
	idle   map[idleConn]struct{} // guarded by mu: answered, waiting for their next request
	closed bool                  // guarded by mu
	err    error                 // Close's result
}

// idleConn is a connection answered on its own, waiting for its next
// request before it comes back: Close closes it, as http.Server.Shutdown
// closes its idle connections.
type idleConn interface{ closeIdle() }

type accepted struct {
	c   net.Conn
	err error
}

// NewListener wraps ln.
func NewListener(ln net.Listener) *Listener {
	return &Listener{
		Listener: ln,
		accepted: make(chan accepted),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// Accept returns the next connection: a handed-back one first, else one
// the listener under it accepted.
func (l *Listener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() }) // owned by l: it returns once l is closed
	for {
		l.mu.Lock()
		if len(l.back) > 0 {
			c := l.back[0]
			l.back[0] = nil
			l.back = l.back[1:]
			if len(l.back) == 0 {
				l.back = nil // let the array go
			}
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case a := <-l.accepted:
			return a.c, a.err
		case <-l.wake:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
}

// acceptLoop accepts from the listener under l until it is closed.
func (l *Listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			select {
			case <-l.done:
				return
			default: // a temporary error: http.Server backs off and accepts again
			}
		}
	}
}

// Close closes the listener under l, every connection handed back and not
// yet accepted, and every one waiting for its next request.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		back, idle := l.back, l.idle
		l.back, l.idle = nil, nil
		l.mu.Unlock()
		close(l.done)
		l.err = l.Listener.Close()
		for _, c := range back {
			c.Close()
		}
		for c := range idle {
			c.closeIdle()
		}
	})
	return l.err
}

// handBack queues c for Accept, with the bytes already read from it put
// back in front. It reports false once l is closed: the caller closes c.
func (l *Listener) handBack(c net.Conn, buffered []byte) bool {
	if len(buffered) > 0 {
		c = &replayConn{Conn: c, buf: buffered}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.back = append(l.back, c)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// addIdle records c as waiting for its next request; false once l is
// closed.
func (l *Listener) addIdle(c idleConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.idle == nil {
		l.idle = map[idleConn]struct{}{}
	}
	l.idle[c] = struct{}{}
	return true
}

// removeIdle forgets c.
func (l *Listener) removeIdle(c idleConn) {
	l.mu.Lock()
	delete(l.idle, c)
	if len(l.idle) == 0 {
		l.idle = nil // Go maps never shrink
	}
	l.mu.Unlock()
}

// open reports whether l still takes connections back.
func (l *Listener) open() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

func (l *Listener) idleTimeout() time.Duration {
	if l.IdleTimeout > 0 {
		return l.IdleTimeout
	}
	return 2 * time.Minute
}

// BaseContext is meant for http.Server.BaseContext: it tells the API's
// handlers that their connections can be handed back to l.
func (l *Listener) BaseContext(net.Listener) context.Context {
	return context.WithValue(context.Background(), listenerKey{}, l)
}

type listenerKey struct{}

func listenerFrom(ctx context.Context) *Listener {
	l, _ := ctx.Value(listenerKey{}).(*Listener)
	return l
}

// replayConn reads buf before the connection: bytes of the next request
// that were read while its long-poll waited.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(b, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

// NetConn returns the connection under c, as tls.Conn's does (conn.Ready
// finds the socket through it).
func (c *replayConn) NetConn() net.Conn { return c.Conn }

// Unreplayed returns the connection a handed-back c wraps, or c.
func Unreplayed(c net.Conn) net.Conn {
	if r, ok := c.(*replayConn); ok {
		return r.Conn
	}
	return c
}
