package session

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// readyWatch is what the reader needs of conn.Ready: Arm asks for one call
// of the callback once the socket is readable, Stop ends the watch.
type readyWatch interface {
	Arm() error
	Stop()
}

// newReady watches c for something to read, calling fn on a new goroutine
// once per Arm.
//
// TODO(framed): conn.Ready (the lead's, IDLE.md point 1) replaces this
// stand-in once it is on main: one epoll instance per process, no
// goroutine while armed. Until then a goroutine waits per armed
// connection, blocked in the runtime poller, as conn.Ready does on
// platforms without epoll.
func newReady(c net.Conn, fn func()) (readyWatch, error) {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok || u.NetConn() == nil || u.NetConn() == c {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("tether: session: no socket to watch")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &goReady{rc: rc, fn: fn}, nil
}

// goReady is the stand-in for conn.Ready: a goroutine per Arm.
type goReady struct {
	rc syscall.RawConn
	fn func()

	mu      sync.Mutex
	stopped bool // guarded by mu
}

func (r *goReady) Arm() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return net.ErrClosed
	}
	go func() {
		r.rc.Read(peekable) // an error (closed, deadline): fn reads it
		r.mu.Lock()
		stopped := r.stopped
		r.mu.Unlock()
		if !stopped {
			r.fn()
		}
	}()
	return nil
}

func (r *goReady) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}
