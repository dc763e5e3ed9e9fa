package tcp_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/session"
)

// rawConn is a client without a goroutine of its own, so that the
// process's goroutines are the server's: it writes lines and reads them
// back on the test's goroutine.
type rawConn struct {
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) write(t testing.TB, s string) {
	t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// want reads lines until one containing s, within 10s.
func (c *rawConn) want(t testing.TB, s string) string {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %s: %v", s, err)
		}
		if strings.Contains(line, s) {
			return line
		}
	}
}

// ping sends a ping with id and waits for its pong: the session runs.
func (c *rawConn) ping(t testing.TB, id string) {
	t.Helper()
	c.write(t, `{"type":"ping","id":"`+id+`"}`+"\n")
	c.want(t, `"id":"`+id+`"`)
}

// idleConfig sends no pings for the test's length: an idle connection
// stays idle.
var idleConfig = session.Config{PingInterval: time.Minute, PingTimeout: 2 * time.Minute}

// settle waits until the process has at most want goroutines, and
// returns how many it has.
func settle(t testing.TB, want int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond) // polling a condition against a deadline
	}
}

// TestIdleConnectionsHoldNoGoroutine: 1,000 connections that said hello,
// subscribed and were answered hold no goroutine each once idle (before:
// two, the reader and the one that wrote), and a shutdown of all of them
// ends each with reason shutdown and lets Stop return.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 1000
	e := newEnv(t, idleConfig)
	ends := make(chan conn.Reason, n)
	go func() { // the Node's Ends channel holds 100
		for range n {
			ends <- e.NextEnd(t, time.Minute).Reason
		}
	}()
	base := runtime.NumGoroutine()
	conns := make([]*rawConn, n)
	for i := range conns {
		c := dialRaw(t, e.addr)
		c.write(t, `{"type":"hello","session":"s`+fmt.Sprint(i)+`"}`+"\n")
		c.write(t, `{"type":"subscribe","id":"s","channel":"idle"}`+"\n")
		c.want(t, `"type":"reply"`)
		conns[i] = c
	}
	// conn.Ready's poller and the channel's parked waiter are the
	// process's, not the connections'.
	got := settle(t, base+10)
	per := float64(got-base) / n
	t.Logf("%d idle connections: %d goroutines over the %d before (%.3f per connection)", n, got-base, base, per)
	if got > base+10 {
		t.Fatalf("%d idle connections hold %d goroutines (%.2f each), want none each", n, got-base, per)
	}

	// The one shutdown path: each client is told, and leaves (bye).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	e.srv.StopAccepting()
	shut := make(chan error, 1)
	go func() { shut <- e.Registry.Shutdown(ctx, 0) }()
	for _, c := range conns {
		c.want(t, `"type":"shutdown"`)
		c.write(t, `{"type":"bye"}`+"\n")
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("shutdown of %d idle connections: %v", n, time.Since(start))
	for range n {
		if r := <-ends; r != conn.ReasonShutdown {
			t.Fatalf("end reason %q, want shutdown", r)
		}
	}
}

// TestReaderRearmedAfterBurst: a burst of frames in one write is served
// in full, the reader then leaves the connection idle, and the next burst
// wakes it again, many times over.
func TestReaderRearmedAfterBurst(t *testing.T) {
	e := newEnv(t, idleConfig)
	idle := runtime.NumGoroutine() + 1 // conn.Ready's poller runs while a connection is watched
	c := dialRaw(t, e.addr)
	c.ping(t, "warm")
	got := settle(t, idle)
	if got > idle {
		t.Fatalf("%d goroutines with one idle connection, want %d", got, idle)
	}
	idle = got // fewer when a poller of an earlier test was still exiting above
	for round := range 20 {
		var b strings.Builder
		for i := range 100 {
			fmt.Fprintf(&b, `{"type":"ping","id":"r%d-%d"}`+"\n", round, i)
		}
		c.write(t, b.String())
		for i := range 100 {
			c.want(t, fmt.Sprintf(`"id":"r%d-%d"`, round, i))
		}
		if got := settle(t, idle); got > idle {
			t.Fatalf("round %d: %d goroutines after the burst was served, want the %d of an idle connection", round, got, idle)
		}
	}
}

// TestFrameSplitAcrossWrites: a frame that arrives in pieces is assembled
// by the reader, which waits for the rest (the connection is not idle
// meanwhile) and then serves it, and a second frame in the last piece.
func TestFrameSplitAcrossWrites(t *testing.T) {
	e := newEnv(t, idleConfig)
	idle := runtime.NumGoroutine() + 1 // conn.Ready's poller
	c := dialRaw(t, e.addr)
	c.ping(t, "warm")
	got := settle(t, idle)
	if got > idle {
		t.Fatalf("%d goroutines with one idle connection, want %d", got, idle)
	}
	idle = got // fewer when a poller of an earlier test was still exiting above
	frame := `{"type":"ping","id":"split","pad":"` + strings.Repeat("x", 40<<10) + `"}` + "\n" + `{"type":"ping","id":"after"}` + "\n"
	pieces := []string{frame[:1], frame[1:100], frame[100 : 20<<10], frame[20<<10 : 40<<10], frame[40<<10:]}
	for i, p := range pieces[:len(pieces)-1] {
		c.write(t, p)
		if i == 0 {
			// The reader runs until the frame is whole: one goroutine
			// more than idle, blocked reading the rest.
			waitFor(t, "the reader to wait for the rest of the frame", func() bool { return runtime.NumGoroutine() > idle })
		}
	}
	c.write(t, pieces[len(pieces)-1])
	c.want(t, `"id":"split"`)
	c.want(t, `"id":"after"`)
	if got := settle(t, idle); got > idle {
		t.Fatalf("%d goroutines after the frame was served, want the %d of an idle connection", got, idle)
	}
}

// TestEndWhileArmed: ends decided while the reader waits for readiness
// (no goroutine of the connection runs): an operator's close, and the
// peer's reset and FIN, each end the connection with its reason and leave
// no goroutine behind.
func TestEndWhileArmed(t *testing.T) {
	e := newEnv(t, idleConfig)
	base := runtime.NumGoroutine()
	for _, tc := range []struct {
		name string
		end  func(c *rawConn, id string)
		want conn.Reason
	}{
		{"kicked", func(c *rawConn, id string) { e.Registry.Close(id, conn.CloseGraceful) }, conn.ReasonKicked},
		{"reset", func(c *rawConn, _ string) { c.nc.(*net.TCPConn).SetLinger(0); c.nc.Close() }, conn.ReasonReset},
		{"fin", func(c *rawConn, _ string) { c.nc.Close() }, conn.ReasonClosed},
	} {
		c := dialRaw(t, e.addr)
		c.ping(t, "warm")
		infos := e.Registry.List()
		if len(infos) != 1 {
			t.Fatalf("%s: %d connections listed, want 1", tc.name, len(infos))
		}
		if got := settle(t, base+1); got > base+1 { // conn.Ready's poller
			t.Fatalf("%s: %d goroutines with one idle connection, want %d", tc.name, got, base+1)
		}
		tc.end(c, infos[0].ID)
		if tc.name == "kicked" {
			c.want(t, `"code":"kicked"`)
		}
		e.WantEnd(t, tc.want)
		c.nc.Close()
		if got := settle(t, base); got > base {
			t.Fatalf("%s: %d goroutines after the end, want %d", tc.name, got, base)
		}
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition against a deadline
	}
}

// TestEndWhileReading: an end decided while the reader is running, blocked
// on the rest of a frame: the reset closes the socket under it, the reader
// stops, and the connection leaves no goroutine behind.
func TestEndWhileReading(t *testing.T) {
	e := newEnv(t, idleConfig)
	base := runtime.NumGoroutine()
	c := dialRaw(t, e.addr)
	c.ping(t, "warm")
	if got := settle(t, base+1); got > base+1 { // conn.Ready's poller
		t.Fatalf("%d goroutines with one idle connection, want %d", got, base+1)
	}
	c.write(t, `{"type":"ping","id":"never-ends`)
	waitFor(t, "the reader to wait for the rest of the frame", func() bool { return runtime.NumGoroutine() > base+1 })
	infos := e.Registry.List()
	if len(infos) != 1 {
		t.Fatalf("%d connections listed, want 1", len(infos))
	}
	if err := e.Registry.Close(infos[0].ID, conn.CloseReset); err != nil {
		t.Fatal(err)
	}
	e.WantEnd(t, conn.ReasonKicked)
	if got := settle(t, base); got > base {
		t.Fatalf("%d goroutines after the end, want %d", got, base)
	}
}
