package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// KeepAlive configures how fast the kernel gives up on a silent peer (one
// that sends neither FIN nor RST: cable pulled, NAT entry expired, host
// powered off). Zero fields take the defaults below.
//
// The defaults notice a silent peer within 10 s whatever the handler does
// (measured in TestSilentPeer; t = time since the peer was last heard):
//
//   - Idle: keepalive probes at Idle (2 s) and every Interval (1 s) after.
//     With TCP_USER_TIMEOUT set, Linux ignores Count and aborts at the first
//     keepalive tick at which UserTimeout (4 s) has passed and at least one
//     probe went unanswered (tcp_keepalive_timer): abort at t = 4 s. Two
//     probes (t = 2 s and 3 s) go out before that tick, so one lost probe
//     or a late answer does not kill a healthy peer.
//   - Streaming: while data is unacknowledged keepalive stands aside and
//     the retransmission timer aborts UserTimeout after the FIRST
//     RETRANSMISSION of the oldest segment (tp->retrans_stamp; the RTO is
//     clamped to what is left): t = gap to our first write + RTO (>= 200 ms)
//   - 4 s, about 5 s for a filler every 500 ms.
//   - Worst case, a long-poll answered just before the idle abort:
//     4 s + RTO + 4 s, about 8.2 s on a LAN, under 10 s while RTO < 2 s.
//
// The worst case is about 2 x UserTimeout + RTO, hence 4 s. 8 s, the
// obvious choice, gives 8 + RTO + 8 = 16+ s. Idle was 3 s until the load
// harness showed its cost: with one probe before the abort, 19,000 idle
// loopback clients whose probes the kernel's backlog dropped in bursts lost
// up to 2,975 healthy connections as "timeout"; with Idle 2 s, none (see
// docs/benchmarks.md). An idle connection costs one probe and its answer
// every Idle. Without TCP_USER_TIMEOUT (UserTimeout < 0) an idle peer is
// dropped after Idle + Count x Interval (6 s), but one that goes silent
// while we stream only after tcp_retries2 retransmissions: 15 minutes. The
// price: a peer silent for 4 s (a long Wi-Fi handover, heavy loss) is
// disconnected.
//
// Slow readers: since Linux 5.11 TCP_USER_TIMEOUT also aborts a peer that
// is alive but has stopped reading, once its receive window has stayed
// closed that long, however promptly its kernel answers our zero-window
// probes (measured on 6.18: ETIMEDOUT 4.2 s into the stall). A transport
// that wants its own lag limit to decide uses a StallGuard, which clears
// TCP_USER_TIMEOUT while the window is closed and restores it after; the
// protocol Engine (WebSocket, TCP) does.
type KeepAlive struct {
	// Idle is how long a connection must be idle before the first probe.
	// Zero means 2 s. Linux counts in whole seconds; Go rounds up.
	Idle time.Duration
	// Interval is the time between probes. Zero means 1 s.
	Interval time.Duration
	// Count is how many probes may go unanswered; it only matters when
	// UserTimeout is disabled. Zero means 4.
	Count int
	// UserTimeout is TCP_USER_TIMEOUT. Zero means 4 s; negative disables.
	UserTimeout time.Duration
}

// Defaults of KeepAlive's fields (see KeepAlive for why these values).
const (
	DefaultKeepAliveIdle     = 2 * time.Second
	DefaultKeepAliveInterval = time.Second
	DefaultKeepAliveCount    = 4
	DefaultUserTimeout       = 4 * time.Second
)

func (ka KeepAlive) withDefaults() (KeepAlive, error) {
	if ka.Idle < 0 || ka.Interval < 0 || ka.Count < 0 {
		return ka, fmt.Errorf("tether: invalid keepalive %+v: negative value", ka)
	}
	if ka.Idle == 0 {
		ka.Idle = DefaultKeepAliveIdle
	}
	if ka.Interval == 0 {
		ka.Interval = DefaultKeepAliveInterval
	}
	if ka.Count == 0 {
		ka.Count = DefaultKeepAliveCount
	}
	if ka.UserTimeout == 0 {
		ka.UserTimeout = DefaultUserTimeout
	}
	return ka, nil
}

// Listen listens on a TCP address. Accepted connections have keepalive
// and TCP_USER_TIMEOUT set as ka says, and record the read and write errors
// that ended them, which Watch uses to tell a reset from a timeout. They
// still satisfy *net.TCPConn's interfaces that net/http and tests use
// (CloseWrite, SetLinger, SyscallConn, ReadFrom); NetConn returns the
// *net.TCPConn itself.
//
// Use it with http.Server.Serve, and ConnContext as http.Server.ConnContext.
func Listen(ctx context.Context, addr string, ka KeepAlive) (net.Listener, error) {
	ka, err := ka.withDefaults()
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: ka.Idle, Interval: ka.Interval, Count: ka.Count,
		},
		Control: func(_, _ string, rc syscall.RawConn) error {
			if ka.UserTimeout < 0 {
				return nil
			}
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = setUserTimeout(fd, ka.UserTimeout) }); err != nil {
				return err
			}
			return serr
		},
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{ln.(*net.TCPListener)}, nil
}

// listener wraps accepted connections in *tcpConn. AcceptTCP, promoted
// from the embedded listener, returns unwrapped connections.
type listener struct{ *net.TCPListener }

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &tcpConn{TCPConn: c, rc: rc}, nil
}

// tcpConn records the first error that ended each direction. Deadline
// timeouts are not recorded: net/http uses them to abort its own reads.
type tcpConn struct {
	*net.TCPConn
	rc syscall.RawConn

	mu       sync.Mutex
	readErr  error // guarded by mu
	writeErr error // guarded by mu
}

func (c *tcpConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *tcpConn) Write(b []byte) (int, error) {
	n, err := c.TCPConn.Write(b)
	if err != nil {
		c.noteWriteErr(err)
	}
	return n, err
}

// ReadFrom keeps net/http's sendfile path while recording socket errors.
// Errors of the source reader are not the peer's doing, so only the errnos
// a dead peer causes are recorded.
func (c *tcpConn) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.TCPConn.ReadFrom(r)
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ETIMEDOUT) {
		c.noteWriteErr(err)
	}
	return n, err
}

// WriteTo hides (*net.TCPConn).WriteTo, which would read past Read.
func (c *tcpConn) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{c})
}

// NetConn returns the underlying *net.TCPConn, as tls.Conn.NetConn does.
func (c *tcpConn) NetConn() net.Conn { return c.TCPConn }

func (c *tcpConn) noteWriteErr(err error) {
	c.mu.Lock()
	if c.writeErr == nil {
		c.writeErr = err
	}
	c.mu.Unlock()
}

func (c *tcpConn) errs() (read, write error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr, c.writeErr
}

type connKey struct{}

// connInfo is what ConnContext stores for Watch: a handle for getsockopt
// and, for connections from Listen, the recorded errors.
type connInfo struct {
	c   net.Conn
	rc  syscall.RawConn
	rec *tcpConn // nil for a plain *net.TCPConn
}

func (ci *connInfo) errs() (read, write error) {
	if ci.rec == nil {
		return nil, nil
	}
	return ci.rec.errs()
}

// ConnContext is meant for http.Server.ConnContext. It stores the
// connection in the context so that Watch can inspect its socket. It works
// with connections from Listen and with any *net.TCPConn (then a reset and
// a timeout are told apart only through SO_ERROR). For other connections,
// including those of listeners wrapped around Listen's, it stores nothing
// and Watch degrades to net/http's cancellation with ReasonCanceled.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if !haveTCPInfo {
		return ctx
	}
	ci := &connInfo{c: c}
	switch c := c.(type) {
	case *tcpConn:
		ci.rc, ci.rec = c.rc, c
	case *net.TCPConn:
		rc, err := c.SyscallConn()
		if err != nil {
			return ctx
		}
		ci.rc = rc
	default:
		return ctx
	}
	return context.WithValue(ctx, connKey{}, ci)
}

// NetConn returns the connection ConnContext stored in ctx (any request
// context derived from it), or nil. Transports use it to close a request's
// connection with a CloseMode. Don't read from or write to it: net/http
// owns it.
func NetConn(ctx context.Context) net.Conn {
	if ci := connInfoFrom(ctx); ci != nil {
		return ci.c
	}
	return nil
}

func connInfoFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connKey{}).(*connInfo)
	return ci
}
