package httpapi

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// readiness watches a hijacked connection for something to read (bytes,
// the peer's FIN, a reset), as conn.Ready does: fn runs on a new
// goroutine once per Arm; after Stop returns no fn call starts.
type readiness interface {
	Arm() error
	Stop()
}

// newReadiness watches c. It waits with a goroutine per armed wait,
// parked in the runtime's poller (a peek at the socket, so nothing that
// arrived before Arm is missed); conn.Ready, once it exists, waits with
// none.
func newReadiness(c net.Conn, fn func()) (readiness, error) {
	if !canWatch {
		return nil, errors.ErrUnsupported
	}
	sc, ok := innermost(c).(syscall.Conn)
	if !ok {
		return nil, errors.New("tether: httpapi: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &peekReady{c: c, rc: rc, fn: fn}, nil
}

// innermost unwraps c (a *tls.Conn, conn.Listen's connection, a
// handed-back connection) down to the socket.
func innermost(c net.Conn) net.Conn {
	for {
		switch u := c.(type) {
		case *replayConn:
			c = u.Conn
		case interface{ NetConn() net.Conn }:
			n := u.NetConn()
			if n == c || n == nil {
				return c
			}
			c = n
		default:
			return c
		}
	}
}

type peekReady struct {
	c  net.Conn
	rc syscall.RawConn
	fn func()

	mu      sync.Mutex
	stopped bool // guarded by mu
	armed   bool // guarded by mu
}

func (r *peekReady) Arm() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return net.ErrClosed
	}
	if r.armed {
		return nil
	}
	r.armed = true
	go r.wait() // owned by r: it returns once c is readable or r stopped
	return nil
}

func (r *peekReady) wait() {
	err := r.rc.Read(func(fd uintptr) bool { return readable(fd) })
	r.mu.Lock()
	r.armed = false
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	_ = err // an error is readable too: the next read says what it is
	r.fn()
}

// Stop ends the watch: a wait in progress is woken by a read deadline in
// the past, and finds r stopped.
func (r *peekReady) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.stopped = true
	if r.armed {
		innermost(r.c).SetReadDeadline(time.Unix(1, 0))
	}
}
