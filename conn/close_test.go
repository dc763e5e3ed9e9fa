//go:build linux

package conn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection: the server's
// from Listen (as transports get them) and the client's.
func tcpPair(t *testing.T) (server net.Conn, client *net.TCPConn) {
	return tcpPairRcvBuf(t, 0)
}

// tcpPairRcvBuf is tcpPair with the client's SO_RCVBUF set before it
// connects (zero: the default), so that its window stays small.
func tcpPairRcvBuf(t *testing.T, rcvBuf int) (server net.Conn, client *net.TCPConn) {
	t.Helper()
	ln, err := Listen(context.Background(), "127.0.0.1:0", KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvBuf == 0 {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c.(*net.TCPConn)
}

// closeAsync runs CloseConn on its own goroutine; the test waits for the
// result, so the goroutine never outlives it.
func closeAsync(c net.Conn, mode CloseMode) <-chan error {
	res := make(chan error, 1)
	go func() { res <- CloseConn(c, mode) }()
	return res
}

func wait[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		var zero T
		return zero
	}
}

func tcpStateOf(t *testing.T, c *net.TCPConn) tcpState {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	s, err := readSockInfo(rc)
	if err != nil {
		t.Fatal(err)
	}
	return s.State
}

// A graceful close delivers everything queued, then EOF, even though the
// client's last bytes were never read by the server and most of the
// payload still sits in the server's send queue (the client's window is
// small and it reads only after the close): without the drain, Linux would
// answer close(2) with RST and purge that queue.
func TestCloseConnGraceful(t *testing.T) {
	server, client := tcpPairRcvBuf(t, 4096)
	if _, err := client.Write([]byte("bytes the server never reads")); err != nil {
		t.Fatal(err)
	}
	// 128 KiB: far more than the client's window, well within the server's
	// default send buffer, so Write returns with most of it unsent.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 8192)
	if _, err := server.Write(payload); err != nil {
		t.Fatal(err)
	}
	closed := closeAsync(server, CloseGraceful)

	got, err := io.ReadAll(client) // nil error: it ended with EOF
	if err != nil {
		t.Fatalf("client read %d bytes, then %v; want all %d then EOF", len(got), err, len(payload))
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("client read %d bytes, want the %d queued", len(got), len(payload))
	}
	client.Close() // our FIN ends the server's drain before its bound
	if err := wait(t, closed, gracefulDrain/2, "graceful close after the client's FIN"); err != nil {
		t.Fatalf("CloseConn(graceful) = %v", err)
	}
}

// A client that never closes holds a graceful close for the drain bound,
// no longer.
func TestCloseConnGracefulDrainBounded(t *testing.T) {
	server, client := tcpPair(t)
	t0 := time.Now()
	if err := wait(t, closeAsync(server, CloseGraceful), 5*gracefulDrain, "graceful close"); err != nil {
		t.Fatalf("CloseConn(graceful) = %v", err)
	}
	if d := time.Since(t0); d < gracefulDrain {
		t.Fatalf("graceful close returned after %v, before the peer's FIN or the %v bound", d, gracefulDrain)
	}
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read = %d, %v; want 0, EOF", n, err)
	}
}

func TestCloseConnReset(t *testing.T) {
	server, client := tcpPair(t)
	if err := CloseConn(server, CloseReset); err != nil {
		t.Fatalf("CloseConn(reset) = %v", err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after reset = %v, want ECONNRESET", err)
	}
}

// canRepair reports whether this process may set TCP_REPAIR.
func canRepair(t *testing.T) bool {
	t.Helper()
	_, client := tcpPair(t)
	rc, err := client.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	err = setRepair(rc)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		t.Fatalf("TCP_REPAIR: %v", err)
	}
	return err == nil
}

// A discarded connection says nothing to the client: no FIN, no RST; its
// socket stays ESTABLISHED. The server's socket is gone though: the
// client's next segment is answered with RST by the server's kernel.
func TestCloseConnDiscard(t *testing.T) {
	if !canRepair(t) {
		t.Skip("discard needs CAP_NET_ADMIN for TCP_REPAIR; run as root (CI does)")
	}
	server, client := tcpPair(t)
	if err := CloseConn(server, CloseDiscard); err != nil {
		t.Fatalf("CloseConn(discard) = %v", err)
	}
	client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := client.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client read after discard = %d, %v; want a timeout (no FIN, no RST)", n, err)
	}
	if s := tcpStateOf(t, client); s != tcpEstablished {
		t.Fatalf("client socket state %d after discard, want ESTABLISHED (%d)", s, tcpEstablished)
	}
	if _, err := client.Write([]byte("anyone there?")); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after writing to a discarded connection = %v, want ECONNRESET", err)
	}
}

// lingerOnly hides the socket (no SyscallConn, no NetConn) but can reset,
// as a wrapper that cannot be unwrapped would.
type lingerOnly struct {
	net.Conn
	tcp *net.TCPConn
}

func (l lingerOnly) SetLinger(sec int) error { return l.tcp.SetLinger(sec) }

func TestCloseConnDiscardFallsBackToReset(t *testing.T) {
	server, client := tcpPair(t)
	raw := innermost(server).(*net.TCPConn)
	err := CloseConn(lingerOnly{Conn: server, tcp: raw}, CloseDiscard)
	if !errors.Is(err, ErrDiscardRefused) {
		t.Fatalf("CloseConn(discard) without a socket = %v, want ErrDiscardRefused", err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after the fallback = %v, want ECONNRESET", err)
	}
}

func TestCloseConnBadMode(t *testing.T) {
	server, _ := tcpPair(t)
	if err := CloseConn(server, "politely"); !errors.Is(err, ErrBadCloseMode) {
		t.Fatalf("CloseConn(bad mode) = %v, want ErrBadCloseMode", err)
	}
}
