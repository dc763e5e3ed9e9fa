//go:build linux

package conn

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Listen sets TCP_USER_TIMEOUT on the listening socket only; this checks
// that accepted sockets inherit it along with the keepalive settings, and
// that the wrapper keeps the methods net/http and users rely on.
func TestListenSocketOptions(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		ka                       KeepAlive
		userMS, idle, intvl, cnt int
	}{
		{"defaults", KeepAlive{}, 4000, 2, 1, 4},
		{"custom", KeepAlive{Idle: 5 * time.Second, Interval: 3 * time.Second, Count: 5, UserTimeout: 1500 * time.Millisecond}, 1500, 5, 3, 5},
		{"no-user-timeout", KeepAlive{UserTimeout: -1}, 0, 2, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := acceptOne(t, tc.ka)
			if _, ok := c.(interface{ CloseWrite() error }); !ok {
				t.Fatal("accepted conn lost CloseWrite")
			}
			rc, err := c.(syscall.Conn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []struct {
				name       string
				level, opt int
				want       int
			}{
				{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, tc.userMS},
				{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, tc.idle},
				{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, tc.intvl},
				{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, tc.cnt},
			} {
				got, err := sockIntOpt(rc, o.level, o.opt)
				if err != nil || got != o.want {
					t.Errorf("%s = %d (%v), want %d", o.name, got, err, o.want)
				}
			}
		})
	}
}

func acceptOne(t *testing.T, ka KeepAlive) net.Conn {
	t.Helper()
	ln, err := Listen(context.Background(), "127.0.0.1:0", ka)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestListenRejectsBadConfig(t *testing.T) {
	for _, ka := range []KeepAlive{{Idle: -time.Second}, {Interval: -1}, {Count: -1}} {
		if ln, err := Listen(context.Background(), "127.0.0.1:0", ka); err == nil {
			ln.Close()
			t.Errorf("Listen(%+v) succeeded, want an error", ka)
		}
	}
}

// The wrapper records the error that ended the read side, ignoring the
// deadline timeouts net/http uses to abort its own reads.
func TestConnRecordsReadError(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0", KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*tcpConn)
	c.SetReadDeadline(time.Now())
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read past deadline succeeded")
	}
	if r, _ := tc.errs(); r != nil {
		t.Fatalf("recorded %v for a deadline, want nothing", r)
	}
	c.SetReadDeadline(time.Time{})
	cc.(*net.TCPConn).SetLinger(0)
	cc.Close()
	c.Read(make([]byte, 1))
	if r, _ := tc.errs(); !errorsIsErrno(r, syscall.ECONNRESET) {
		t.Fatalf("recorded %v, want ECONNRESET", r)
	}
}
