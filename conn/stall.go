package conn

import (
	"net"
	"syscall"
	"time"
)

// StallGuard keeps the kernel from ending, as a timeout, a peer that is
// alive but has stopped reading, so that the application's own lag limit
// (session.Config.MaxLag) decides how long to wait for it.
//
// Why it is needed: a peer that stops reading fills its receive buffer and
// advertises a zero window; its kernel keeps answering our zero-window
// probes (or, when the window closed on segments already in flight, our
// retransmissions of them, which the retransmission timer sends as probes
// with exponential backoff). RFC 1122 4.2.2.17 says such a connection
// stays open as long as the peer answers. But since Linux 5.11
// (commit 9d9b1ee0b2d1, "tcp: fix TCP_USER_TIMEOUT with zero window") a
// socket with TCP_USER_TIMEOUT is aborted with ETIMEDOUT once its window
// has stayed closed for that long, answered probes or not
// (tcp_probe_timer; tcp_rtx_probe0_timed_out for the retransmission
// path). With Listen's 4 s default, every stalled reader would end as a
// timeout 4 s in (measured on Linux 6.18: 4.2 s).
//
// So while the peer's advertised window is too small to send our next
// segment (tcpi_snd_wnd < tcpi_snd_mss) and data waits, Check clears
// TCP_USER_TIMEOUT; once the window opens again, or nothing waits, it
// restores the value the socket had. A peer silent with an open window,
// idle or streaming, is therefore still aborted by the kernel as
// KeepAlive describes. A peer that stalls and then goes silent is not:
// its retransmissions back off (0.4 s, 0.8 s, ... up to 120 s) and the
// kernel gives up only after tcp_retries2 probes or, on the
// retransmission path, 240 s without an ACK; whoever uses the guard must
// bound a stall itself (the protocol Engine ends it with slow-consumer
// at MaxLag, or heartbeat-timeout when no message is waiting).
//
// The guard must see the stall before the kernel gives up: call Check at
// least every Interval while data may be waiting. A StallGuard is used by
// one goroutine.
type StallGuard struct {
	rc          syscall.RawConn
	userTimeout time.Duration // the socket's TCP_USER_TIMEOUT when the guard was made
	relaxed     bool          // TCP_USER_TIMEOUT is cleared
}

// Stall is what Check saw.
type Stall struct {
	// Pending: data waits to be sent or to be acknowledged.
	Pending bool
	// Stalled: data waits and the peer's window is too small to take the
	// next segment; the peer is alive (the kernel has not given up) but
	// not reading.
	Stalled bool
}

// NewStallGuard returns a guard for a TCP connection: a *net.TCPConn, a
// connection from Listen, or one whose NetConn method returns either
// (tls.Conn). It returns nil for any other connection, on systems without
// TCP_INFO, and on Linux before 5.11, which keeps zero-window peers that
// answer anyway; a nil guard's Check reports nothing.
func NewStallGuard(c net.Conn) *StallGuard {
	if !haveTCPInfo || !zeroWindowAborts() {
		return nil
	}
	var rc syscall.RawConn
	for range 4 { // a few layers of wrapping, never a cycle
		if rc != nil {
			break
		}
		switch x := c.(type) {
		case *tcpConn:
			rc = x.rc
		case *net.TCPConn:
			r, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			rc = r
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	if rc == nil {
		return nil
	}
	ut, err := sockIntOpt(rc, ipprotoTCP, tcpUserTimeoutOpt)
	if err != nil {
		return nil
	}
	return &StallGuard{rc: rc, userTimeout: time.Duration(ut) * time.Millisecond}
}

// Interval is how often Check must run while data may be waiting: a
// quarter of the socket's TCP_USER_TIMEOUT, between 100 ms and 1 s, so
// that a stall is seen well before the kernel would abort it (the abort
// comes TCP_USER_TIMEOUT after the first zero-window probe or
// retransmission, itself an RTO, at least 200 ms, after the window
// closed).
func (g *StallGuard) Interval() time.Duration {
	if g == nil || g.userTimeout == 0 {
		return time.Second
	}
	return min(max(g.userTimeout/4, 100*time.Millisecond), time.Second)
}

// Heard says how long ago the kernel last heard from the peer: Data is
// the age of the last segment carrying data (tcpi_last_data_recv), Ack of
// the last acknowledgment (tcpi_last_ack_recv; the kernel refreshes it on
// every ACK that is not older than one seen before, data or not). Both
// count what reached the kernel, read by the application or not: a peer
// whose application is busy still has a kernel that acknowledges our
// data, and a frame it sent that we have not read yet shows in Data. A
// nil guard reports ok false.
func (g *StallGuard) Heard() (data, ack time.Duration, ok bool) {
	if g == nil {
		return 0, 0, false
	}
	data, ack, err := readHeard(g.rc)
	return data, ack, err == nil
}

// Check reads TCP_INFO, and clears or restores TCP_USER_TIMEOUT as the
// type's doc says. It never blocks. An error means the socket is closed.
func (g *StallGuard) Check() (Stall, error) {
	if g == nil {
		return Stall{}, nil
	}
	st, err := readStall(g.rc)
	if err != nil {
		return Stall{}, err
	}
	if g.userTimeout > 0 && st.Stalled != g.relaxed {
		ut := time.Duration(0)
		if !st.Stalled {
			ut = g.userTimeout
		}
		var serr error
		if err := g.rc.Control(func(fd uintptr) { serr = setUserTimeout(fd, ut) }); err != nil {
			return st, err
		}
		if serr != nil {
			return st, serr
		}
		g.relaxed = st.Stalled
	}
	return st, nil
}
