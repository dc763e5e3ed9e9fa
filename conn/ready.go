package conn

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// ErrReadyStopped is Arm's error after Stop.
var ErrReadyStopped = errors.New("conn: ready: stopped")

// Ready tells when a connection has something to read (bytes, the peer's
// FIN, a reset, an error) without a goroutine waiting on it, so that an
// idle connection costs no stack. On Linux one epoll instance serves the
// process; its descriptor is itself waited on through the Go runtime's
// poller, by one goroutine that runs only while something is watched.
// Elsewhere Arm starts a goroutine that waits in a read, as a blocking
// reader would (the same behaviour, without the saving).
//
// A reader built on it reads and handles everything it has, arms, and
// returns; fn starts it again:
//
//	r, err := conn.NewReady(c, func() { go on reading })
//	...
//	r.Arm() // when nothing more is buffered
//	...
//	r.Stop() // when the connection ends
//
// Ready looks at the socket only: bytes a reader already took from it (a
// bufio.Reader's, a tls.Conn's decrypted record) are the reader's to
// handle before it arms.
type Ready struct {
	rc syscall.RawConn
	fn func()
	readyState
}

// NewReady watches c for something to read: c is a *net.TCPConn, a
// connection that unwraps to one (NetConn, as tls.Conn and Listen's
// connections do), or another syscall.Conn. fn runs on a new goroutine,
// once per Arm. Stop must be called once the watch is no longer wanted,
// whether c is closed or not.
func NewReady(c net.Conn, fn func()) (*Ready, error) {
	sc, err := syscallConn(c)
	if err != nil {
		return nil, err
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &Ready{rc: rc, fn: fn}
	if err := r.init(); err != nil {
		return nil, err
	}
	return r, nil
}

// syscallConn finds the socket under c: a tls.Conn's is its NetConn; a
// wrapper's, what its NetConn method returns.
func syscallConn(c net.Conn) (syscall.Conn, error) {
	for range 8 {
		switch v := c.(type) {
		case *tls.Conn:
			c = v.NetConn()
		case syscall.Conn:
			return v, nil
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil, errors.New("conn: ready: the connection has no socket to watch")
		}
	}
	return nil, errors.New("conn: ready: too many wrappers around the connection")
}
