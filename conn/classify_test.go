package conn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestJudge(t *testing.T) {
	m := marks{acked: 1000, segs: 10}
	for _, tc := range []struct {
		name string
		s    sockInfo
		want verdict
	}{
		{"established", sockInfo{State: tcpEstablished, SegsOut: 99}, vOpen},
		{"fin, all acked, no ack since", sockInfo{State: tcpCloseWait, SegsOut: 10, Acked: 1000}, vFIN},
		{"fin, probe unacked", sockInfo{State: tcpCloseWait, SegsOut: 11, Unacked: 1, Acked: 1000}, vInFlight},
		{"fin, probe queued", sockInfo{State: tcpCloseWait, SegsOut: 10, NotSent: 30, Acked: 1000}, vInFlight},
		{"fin, probe acked", sockInfo{State: tcpCloseWait, SegsOut: 11, Acked: 1030}, vReading},
		{"fin, acked while more in flight", sockInfo{State: tcpCloseWait, SegsOut: 40, Unacked: 5, Acked: 9000}, vReading},
		{"rst", sockInfo{State: tcpClose, SegsOut: 11, Acked: 1000}, vGone},
		{"we are closing (LAST_ACK)", sockInfo{State: 9}, vGone},
	} {
		if got := judge(tc.s, m); got != tc.want {
			t.Errorf("%s: judge = %d, want %d", tc.name, got, tc.want)
		}
	}
	// In-flight segments when the FIN is seen count as sent after it.
	if mk := marksOf(sockInfo{SegsOut: 12, Unacked: 2}); !mk.provoked(sockInfo{SegsOut: 12}) {
		t.Error("segments in flight at the FIN do not count as provoking an RST")
	}
}

func TestGoneCause(t *testing.T) {
	opErr := func(op string, errno syscall.Errno) error {
		return &net.OpError{Op: op, Err: os.NewSyscallError(op, errno)}
	}
	deadline := &net.OpError{Op: "write", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		name string
		ev   evidence
		want Reason
	}{
		{"rst on open connection", evidence{closed: true, readErr: opErr("read", syscall.ECONNRESET)}, ReasonReset},
		{"keepalive gave up", evidence{closed: true, readErr: opErr("read", syscall.ETIMEDOUT)}, ReasonTimeout},
		{"user timeout after fin", evidence{closed: true, sockErr: syscall.ETIMEDOUT, readErr: io.EOF, provoked: true}, ReasonTimeout},
		{"rst answered our probe", evidence{closed: true, sockErr: syscall.EPIPE, readErr: io.EOF, provoked: true}, ReasonClosed},
		{"rst after fin, unprovoked", evidence{closed: true, sockErr: syscall.EPIPE, readErr: io.EOF}, ReasonReset},
		{"closed, no errno (plain TCPConn)", evidence{closed: true, provoked: true}, ReasonClosed},
		{"closed, no errno, unprovoked", evidence{closed: true}, ReasonReset},
		{"net/http closed after epipe", evidence{readErr: net.ErrClosed, writeErr: opErr("write", syscall.EPIPE), provoked: true}, ReasonClosed},
		{"write timeout", evidence{readErr: net.ErrClosed, writeErr: deadline}, ReasonWriteFailed},
		{"server closed the conn", evidence{readErr: net.ErrClosed, cause: errors.New("x")}, ReasonCanceled},
	} {
		if got := goneCause(tc.ev); got.Reason != tc.want {
			t.Errorf("%s: reason = %s (%v), want %s", tc.name, got.Reason, got, tc.want)
		}
	}
}

func errorsIsErrno(err error, errno syscall.Errno) bool { return errors.Is(err, errno) }
