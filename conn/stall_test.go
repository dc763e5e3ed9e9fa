//go:build linux

package conn

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStallGuard: a peer that stops reading but whose kernel answers our
// probes outlives TCP_USER_TIMEOUT while the guard looks at it, and gets
// the timeout back once it reads again. Without the guard, Linux 6.18
// aborts it 4.2 s in (ETIMEDOUT).
func TestStallGuard(t *testing.T) {
	t.Parallel() // 6 s of a stalled peer
	ln, err := Listen(t.Context(), "127.0.0.1:0", KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.(*net.TCPConn).SetReadBuffer(16 << 10)
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g := NewStallGuard(c)
	if g == nil {
		t.Skip("no stall guard on this kernel (before Linux 5.11 none is needed)")
	}
	rc, _ := c.(syscall.Conn).SyscallConn()
	userTimeout := func() int {
		v, err := sockIntOpt(rc, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				werr <- err
				return
			}
		}
	}()
	var stalledAt time.Time
	for time.Since(stalledAt) < 6*time.Second || stalledAt.IsZero() {
		select {
		case err := <-werr:
			t.Fatalf("write failed %v into the stall: %v", time.Since(stalledAt), err)
		case <-time.After(g.Interval()):
		}
		st, err := g.Check()
		if err != nil {
			t.Fatal(err)
		}
		if st.Stalled && stalledAt.IsZero() {
			stalledAt = time.Now()
			if got := userTimeout(); got != 0 {
				t.Fatalf("stalled: TCP_USER_TIMEOUT = %d, want 0", got)
			}
		}
	}
	t.Logf("stalled peer kept for %v, past TCP_USER_TIMEOUT", time.Since(stalledAt).Round(time.Millisecond))

	// It reads again: the window opens and the timeout comes back.
	go io.Copy(io.Discard, cc)
	waitFor(t, 5*time.Second, "the stall to end", func() bool {
		st, err := g.Check()
		return err == nil && !st.Stalled
	})
	if got := userTimeout(); got != 4000 {
		t.Fatalf("after the stall: TCP_USER_TIMEOUT = %d, want 4000", got)
	}
	c.Close()
	<-werr
}
