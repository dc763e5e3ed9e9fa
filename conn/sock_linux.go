//go:build linux

package conn

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// haveTCPInfo says Watch can tell how a peer left.
const haveTCPInfo = true

// tcpInfo reads TCP_INFO (tcp(7)) through rc.
func tcpInfo(rc syscall.RawConn) (*unix.TCPInfo, error) {
	var ti *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		ti, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return ti, serr
}

// readSockInfo reads TCP_INFO (tcp(7)). It never blocks and never changes
// the socket, so it is safe while net/http reads and writes. It fails once
// net/http has closed the connection.
func readSockInfo(rc syscall.RawConn) (sockInfo, error) {
	ti, err := tcpInfo(rc)
	if err != nil {
		return sockInfo{}, err
	}
	return sockInfo{
		State:   tcpState(ti.State),
		Unacked: ti.Unacked,
		NotSent: ti.Notsent_bytes,
		SegsOut: ti.Data_segs_out,
		Acked:   ti.Bytes_acked,
		RTT:     time.Duration(ti.Rtt) * time.Microsecond,
	}, nil
}

// Socket option numbers for NewStallGuard, which is shared with systems
// that lack them.
const (
	ipprotoTCP        = unix.IPPROTO_TCP
	tcpUserTimeoutOpt = unix.TCP_USER_TIMEOUT
)

// readStall reads what StallGuard needs from TCP_INFO: whether data waits
// (tcpi_unacked segments in flight, tcpi_notsent_bytes queued) and
// whether the peer's last advertised window (tcpi_snd_wnd, Linux >= 5.4)
// is below one segment (tcpi_snd_mss), when the kernel probes instead of
// sending.
func readStall(rc syscall.RawConn) (Stall, error) {
	ti, err := tcpInfo(rc)
	if err != nil {
		return Stall{}, err
	}
	if tcpState(ti.State) == tcpClose {
		return Stall{}, syscall.ENOTCONN
	}
	pending := ti.Unacked > 0 || ti.Notsent_bytes > 0
	return Stall{Pending: pending, Stalled: pending && ti.Snd_wnd < ti.Snd_mss}, nil
}

// readHeard reads the ages of the last data segment and the last ACK
// received (tcpi_last_data_recv, tcpi_last_ack_recv: milliseconds).
func readHeard(rc syscall.RawConn) (data, ack time.Duration, err error) {
	ti, err := tcpInfo(rc)
	if err != nil {
		return 0, 0, err
	}
	if tcpState(ti.State) == tcpClose {
		return 0, 0, syscall.ENOTCONN
	}
	return time.Duration(ti.Last_data_recv) * time.Millisecond, time.Duration(ti.Last_ack_recv) * time.Millisecond, nil
}

// zeroWindowAborts says whether this kernel aborts a zero-window peer that
// answers its probes once TCP_USER_TIMEOUT has passed: Linux 5.11 and
// later (commit 9d9b1ee0b2d1). Older kernels keep such a peer, as RFC 1122
// asks, and may lack tcpi_snd_wnd, so StallGuard stays out of the way.
var zeroWindowAborts = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 5 || major == 5 && minor >= 11
})

// readSockErr reads and clears SO_ERROR. Only called once the socket is in
// TCP_CLOSE, when nobody else needs the pending error: Linux leaves EPIPE
// there for an RST received after the peer's FIN, ECONNRESET for an RST on
// an open connection and ETIMEDOUT when keepalive or TCP_USER_TIMEOUT gave
// up (tcp_reset, tcp_write_err in net/ipv4/tcp_input.c, tcp_timer.c).
func readSockErr(rc syscall.RawConn) error {
	var v int
	var serr error
	err := rc.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	})
	if err == nil {
		err = serr
	}
	if err != nil || v == 0 {
		return nil
	}
	return syscall.Errno(v)
}

// setUserTimeout sets TCP_USER_TIMEOUT (RFC 5482; tcp(7)): the kernel
// aborts the connection with ETIMEDOUT once data stays unacknowledged, or
// keepalive probes stay unanswered, for longer than d. Linux copies it from
// a listening socket to the sockets it accepts (inet_csk_clone_lock copies
// icsk_user_timeout); TestListenSocketOptions checks that.
func setUserTimeout(fd uintptr, d time.Duration) error {
	ms := d.Milliseconds()
	if ms > int64(^uint32(0)>>1) {
		return errors.New("tether: user timeout too large")
	}
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(ms))
}

// sockIntOpt reads an integer socket option; tests use it to check what
// accepted sockets inherited.
func sockIntOpt(rc syscall.RawConn, level, opt int) (int, error) {
	var v int
	var serr error
	err := rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), level, opt) })
	if err == nil {
		err = serr
	}
	return v, err
}
