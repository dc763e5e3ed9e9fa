//go:build linux

package conn

import (
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readyPair is a server-side connection of a real loopback pair, watched
// by a Ready whose calls arrive on fired.
type readyPair struct {
	srv, cli net.Conn
	r        *Ready
	fired    chan struct{}
}

func newReadyPair(t *testing.T, ln net.Listener) *readyPair {
	t.Helper()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p := &readyPair{srv: srv, cli: cli, fired: make(chan struct{}, 16)}
	if p.r, err = NewReady(srv, func() { p.fired <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.r.Stop()
		srv.Close()
		cli.Close()
	})
	return p
}

func loopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func (p *readyPair) wantFired(t *testing.T, what string) {
	t.Helper()
	select {
	case <-p.fired:
	case <-time.After(10 * time.Second):
		t.Fatalf("no call within 10s after %s", what)
	}
}

// TestReadyFires: a call for bytes, for the peer's FIN and for a reset.
func TestReadyFires(t *testing.T) {
	ln := loopback(t)
	p := newReadyPair(t, ln)
	if err := p.r.Arm(); err != nil {
		t.Fatal(err)
	}
	p.cli.Write([]byte("a"))
	p.wantFired(t, "a byte")

	buf := make([]byte, 8)
	if _, err := p.srv.Read(buf); err != nil {
		t.Fatal(err)
	}

	if err := p.r.Arm(); err != nil {
		t.Fatal(err)
	}
	p.cli.(*net.TCPConn).CloseWrite()
	p.wantFired(t, "the peer's FIN")
	if _, err := p.srv.Read(buf); err == nil {
		t.Fatal("read after FIN: want EOF")
	}

	q := newReadyPair(t, ln)
	if err := q.r.Arm(); err != nil {
		t.Fatal(err)
	}
	q.cli.(*net.TCPConn).SetLinger(0)
	q.cli.Close()
	q.wantFired(t, "a reset")
}

// TestReadyLevelTriggered: bytes that arrived before the first Arm are
// reported at once.
func TestReadyLevelTriggered(t *testing.T) {
	ln := loopback(t)
	p := newReadyPair(t, ln)
	p.cli.Write([]byte("early"))
	// Wait until the bytes are in the server's socket: a peek would be a
	// read, so read them and write again.
	buf := make([]byte, 8)
	if _, err := p.srv.Read(buf); err != nil {
		t.Fatal(err)
	}
	p.cli.Write([]byte("x"))
	waitFor(t, 10*time.Second, "the byte in the server's socket", func() bool { return inputWaiting(t, p.srv) })
	if err := p.r.Arm(); err != nil {
		t.Fatal(err)
	}
	p.wantFired(t, "arming over a waiting byte")
}

// inputWaiting reports whether c's socket holds unread bytes (SIOCINQ).
func inputWaiting(t *testing.T, c net.Conn) bool {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}

// TestReadyStop: after Stop, Arm fails and nothing fires; Stop after the
// connection closed is safe, and a closed connection's Ready never fires
// for the connection that takes its descriptor number.
func TestReadyStop(t *testing.T) {
	ln := loopback(t)
	a := newReadyPair(t, ln)
	if err := a.r.Arm(); err != nil {
		t.Fatal(err)
	}
	a.srv.Close() // without Stop: the kernel drops the registration
	if err := a.r.Arm(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Arm on a closed connection: %v, want net.ErrClosed", err)
	}

	// b very likely takes a's descriptor number.
	b := newReadyPair(t, ln)
	if err := b.r.Arm(); err != nil {
		t.Fatal(err)
	}
	a.r.Stop() // must not remove b's registration
	a.r.Stop()
	if err := a.r.Arm(); !errors.Is(err, ErrReadyStopped) {
		t.Fatalf("Arm after Stop: %v, want ErrReadyStopped", err)
	}
	b.cli.Write([]byte("b"))
	b.wantFired(t, "a byte for the connection that reused the descriptor")
	if len(a.fired) != 0 {
		t.Fatal("the stopped Ready fired")
	}

	b.r.Stop()
	b.cli.Write([]byte("more"))
	if err := b.r.Arm(); !errors.Is(err, ErrReadyStopped) {
		t.Fatalf("Arm after Stop: %v", err)
	}
}

// TestReadyManyWithoutGoroutines: 1,000 armed connections cost no
// goroutine each, and bytes to every one bring exactly one call each.
func TestReadyManyWithoutGoroutines(t *testing.T) {
	const n = 1000
	ln := loopback(t)
	var calls atomic.Int64
	done := make(chan struct{}, n)
	type pair struct {
		srv, cli net.Conn
		r        *Ready
	}
	pairs := make([]pair, n)
	base := runtime.NumGoroutine()
	for i := range pairs {
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReady(srv, func() {
			calls.Add(1)
			done <- struct{}{}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Arm(); err != nil {
			t.Fatal(err)
		}
		pairs[i] = pair{srv, cli, r}
	}
	t.Cleanup(func() {
		for _, p := range pairs {
			p.r.Stop()
			p.srv.Close()
			p.cli.Close()
		}
	})
	if g := runtime.NumGoroutine() - base; g > 2 {
		t.Fatalf("%d armed connections run %d goroutines more, want at most the poller's", n, g)
	}
	for _, p := range pairs {
		p.cli.Write([]byte("x"))
	}
	for i := range n {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d calls within 20s", i, n)
		}
	}
	if c := calls.Load(); c != n {
		t.Fatalf("%d calls, want %d", c, n)
	}
}

// TestReadyTLS: a tls.Conn is watched through the socket under it.
func TestReadyTLS(t *testing.T) {
	ln := loopback(t)
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fired := make(chan struct{}, 1)
	r, err := NewReady(tls.Server(srv, &tls.Config{}), func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if err := r.Arm(); err != nil {
		t.Fatal(err)
	}
	cli.Write([]byte{0x16}) // the first byte of a handshake record
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("no call for the tls.Conn's socket")
	}
}

// TestReadyPollerExits: once nothing is watched, the poller's goroutine
// is gone (goleak in TestMain checks the same at the end), and the next
// watch starts it again.
func TestReadyPollerExits(t *testing.T) {
	ln := loopback(t)
	for range 3 {
		p := newReadyPair(t, ln)
		if err := p.r.Arm(); err != nil {
			t.Fatal(err)
		}
		p.cli.Write([]byte("x"))
		p.wantFired(t, "a byte")
		p.r.Stop()
		waitFor(t, 10*time.Second, "the poller to exit with nothing watched", func() bool { return !pollerRunning() })
	}
}

func pollerRunning() bool {
	thePoll.mu.Lock()
	defer thePoll.mu.Unlock()
	return thePoll.running
}
