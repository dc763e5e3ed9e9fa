package ws_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/session"
)

// idleConfig sends no pings for the test's length: an idle connection
// stays idle.
var idleConfig = session.Config{PingInterval: time.Minute, PingTimeout: 2 * time.Minute}

// settle waits until the process has at most want goroutines, and
// returns how many it has.
func settle(want int) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond) // polling a condition against a deadline
	}
}

// idleRaw dials a raw WebSocket (rawDial: no goroutine on the client's
// side), has it answered once, and returns it with the goroutine count of
// the process once it is idle: the test's before it, plus conn.Ready's
// poller, which runs while a connection is watched.
func idleRaw(t *testing.T) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	e, _ := newCountingEnv(t, idleConfig)
	idle := runtime.NumGoroutine() + 1
	nc, br := rawDial(t, e.url)
	nc.Write(clientFrame(0x81, `{"id":"warm","type":"ping"}`))
	wantPong(t, nc, br, "warm")
	got := settle(idle)
	if got > idle {
		t.Fatalf("%d goroutines with one idle connection, want %d", got, idle)
	}
	idle = got // fewer when a poller of an earlier test was still exiting above
	return nc, br, idle
}

// TestControlFramesLeaveNoReader: a WebSocket ping (answered with a pong)
// or an unasked pong, alone, leaves the connection idle: no reader waits
// for a data frame after it.
func TestControlFramesLeaveNoReader(t *testing.T) {
	nc, br, idle := idleRaw(t)
	for i := range 5 {
		nc.Write(clientFrame(0x89, fmt.Sprint("ping ", i)))
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := readServerFrame(br)
		if err != nil || f.op != 0xA || string(f.payload) != fmt.Sprint("ping ", i) {
			t.Fatalf("ping %d answered with %+v, %v; want its pong", i, f, err)
		}
		if got := settle(idle); got > idle {
			t.Fatalf("after ping %d: %d goroutines, want the %d of an idle connection", i, got, idle)
		}
		nc.Write(clientFrame(0x8A, "unasked"))
		if got := settle(idle); got > idle {
			t.Fatalf("after a pong: %d goroutines, want the %d of an idle connection", got, idle)
		}
	}
	nc.Write(clientFrame(0x81, `{"id":"after","type":"ping"}`))
	wantPong(t, nc, br, "after")
}

// TestReaderRearmedAfterBurst: a burst of frames in one write (data and
// control frames) is served in full; the reader then leaves the
// connection idle, and the next burst wakes it again.
func TestReaderRearmedAfterBurst(t *testing.T) {
	nc, br, idle := idleRaw(t)
	for round := range 20 {
		var b []byte
		for i := range 50 {
			b = append(b, clientFrame(0x81, fmt.Sprintf(`{"id":"r%d-%d","type":"ping"}`, round, i))...)
			if i%10 == 0 {
				b = append(b, clientFrame(0x89, "p")...)
			}
		}
		nc.Write(b)
		for i := range 50 {
			wantPong(t, nc, br, fmt.Sprintf("r%d-%d", round, i))
		}
		if got := settle(idle); got > idle {
			t.Fatalf("round %d: %d goroutines after the burst was served, want the %d of an idle connection", round, got, idle)
		}
	}
}

// TestPartialFrameKeepsReader: a frame (and a fragmented message) that is
// only partly in keeps its reader, which serves it once the rest comes;
// then the connection is idle again.
func TestPartialFrameKeepsReader(t *testing.T) {
	nc, br, idle := idleRaw(t)
	frame := clientFrame(0x81, `{"id":"split","type":"ping","pad":"`+strings.Repeat("x", 40<<10)+`"}`)
	nc.Write(frame[:3])
	waitFor(t, "the reader to wait for the rest of the frame", func() bool { return runtime.NumGoroutine() > idle })
	nc.Write(frame[3 : 20<<10])
	nc.Write(frame[20<<10:])
	wantPong(t, nc, br, "split")
	if got := settle(idle); got > idle {
		t.Fatalf("%d goroutines after the frame was served, want %d", got, idle)
	}
	// A message in fragments, a ping between them, sent apart.
	nc.Write(clientFrame(0x01, `{"id":"frag",`))
	waitFor(t, "the reader to wait for the next fragment", func() bool { return runtime.NumGoroutine() > idle })
	nc.Write(clientFrame(0x89, "mid"))
	nc.Write(clientFrame(0x80, `"type":"ping"}`))
	wantPong(t, nc, br, "frag")
	if got := settle(idle); got > idle {
		t.Fatalf("%d goroutines after the fragmented message was served, want %d", got, idle)
	}
}

// waitFor polls cond against a 10s deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition against a deadline
	}
}

// TestStopWaitsForConnections: with ServeHTTP returned, Stop still waits
// for every live connection (the core's done), and refuses new upgrades.
func TestStopWaitsForConnections(t *testing.T) {
	e, _ := newCountingEnv(t, idleConfig)
	nc, br := rawDial(t, e.url)
	nc.Write(clientFrame(0x81, `{"id":"p","type":"ping"}`))
	wantPong(t, nc, br, "p")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.h.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a live connection: %v, want the context's deadline", err)
	}
	// New upgrades are refused once stopping.
	c2, err := net.Dial("tcp", e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if res, err := http.ReadResponse(bufio.NewReader(c2), nil); err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("an upgrade after Stop: %v, %v; want 503", res, err)
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- e.h.Stop(ctx)
	}()
	nc.Write(clientFrame(0x88, closePayload(1000, "")))
	if err := <-stopped; err != nil {
		t.Fatalf("Stop once the connection ended: %v", err)
	}
	e.WantEnd(t, conn.ReasonClosed)
}

// TestNoLostWakeups: 40 connections each make 150 requests one after
// another, some split across two writes, some behind a WebSocket ping, so
// that the reader arms readiness and wakes thousands of times on each;
// every request is answered (a lost wake-up would leave one unanswered
// until the 10s read deadline).
func TestNoLostWakeups(t *testing.T) {
	e, _ := newCountingEnv(t, idleConfig)
	const conns, reqs = 40, 150
	var wg sync.WaitGroup
	lat := make([]time.Duration, conns)
	for c := range conns {
		nc, br := rawDial(t, e.url)
		wg.Go(func() {
			var worst time.Duration
			for i := range reqs {
				id := fmt.Sprintf("c%d-%d", c, i)
				f := clientFrame(0x81, `{"id":"`+id+`","type":"ping"}`)
				start := time.Now()
				switch i % 3 {
				case 0:
					nc.Write(f)
				case 1:
					nc.Write(f[:5])
					nc.Write(f[5:])
				case 2:
					nc.Write(append(clientFrame(0x89, "x"), f...))
				}
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				for {
					sf, err := readServerFrame(br)
					if err != nil {
						t.Errorf("request %s unanswered: %v", id, err)
						return
					}
					if sf.op == 0x1 && strings.Contains(string(sf.payload), `"id":"`+id+`"`) {
						break
					}
				}
				worst = max(worst, time.Since(start))
			}
			lat[c] = worst
		})
	}
	wg.Wait()
	slices.Sort(lat)
	t.Logf("%d connections x %d requests answered; slowest answer per connection: median %v, max %v", conns, reqs, lat[conns/2], lat[conns-1])
}
