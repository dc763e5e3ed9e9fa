package ws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
)

func TestPublishSubscribe(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url+"?session=alice", true)
	cur := c.Request(map[string]any{"id": "p1", "type": "publish", "channel": "news", "data": "hi"}).Str("cursor")
	prototest.WantOK(t, c.Request(map[string]any{"id": "s1", "type": "subscribe", "channel": "news", "after": "0"}))
	m := c.Next()
	if m.Str("type") != "message" || m.Str("cursor") != cur || m["data"] != "hi" {
		t.Fatalf("got %v, want message %s", m, cur)
	}
	infos := e.Registry.List()
	if len(infos) != 1 || infos[0].SessionKey != "alice" || infos[0].Transport != registry.TransportWebSocket {
		t.Fatalf("registry lists %+v, want one websocket connection of session alice", infos)
	}
	prototest.WantError(t, c.Request(map[string]any{"id": "x", "type": "nope"}), "unknown_type")
	c.c.Close(websocket.StatusNormalClosure, "bye")
	e.WantEnd(t, conn.ReasonClosed)
}

func TestBadSessionKey(t *testing.T) {
	e := newEnv(t, session.Config{})
	_, res, err := websocket.Dial(t.Context(), e.url+"?session=%00", nil)
	if err == nil || res == nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial with a bad session key: %v, %v; want 400", res, err)
	}
}

func TestEndReset(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	c.nc.SetLinger(0)
	c.nc.Close()
	e.WantEnd(t, conn.ReasonReset)
}

func TestEndClosedWithoutCloseFrame(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	c.nc.Close() // FIN, no close frame
	e.WantEnd(t, conn.ReasonClosed)
}

// TestEndHeartbeatTimeout: a client that answers no pings while its
// kernel acknowledges them is a busy peer: it ends with heartbeat-timeout
// after BusyPeerTimeout; told to ignore the kernel, after PingTimeout.
func TestEndHeartbeatTimeout(t *testing.T) {
	for _, tc := range []struct {
		busy, want time.Duration
	}{{busy: 2 * time.Second, want: 2 * time.Second}, {busy: -1, want: time.Second}} {
		e := newEnv(t, session.Config{PingInterval: 200 * time.Millisecond, PingTimeout: time.Second, BusyPeerTimeout: tc.busy})
		c := connect(t, e.url, false)
		c.Send(map[string]any{"id": "s", "type": "subscribe", "channel": "a"})
		sent := time.Now()
		x := e.WantEnd(t, conn.ReasonHeartbeatTimeout)
		took := x.At.Sub(sent)
		t.Logf("BusyPeerTimeout %v: heartbeat-timeout noticed %v after the last frame (PingTimeout 1s)", tc.busy, took)
		if took < tc.want-100*time.Millisecond || took > tc.want+2*time.Second {
			t.Fatalf("BusyPeerTimeout %v: ended %v after the last frame, want about %v", tc.busy, took, tc.want)
		}
	}
}

func TestEndIdleTimeout(t *testing.T) {
	e := newEnv(t, session.Config{IdleTimeout: 500 * time.Millisecond})
	c := connect(t, e.url, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	e.WantEnd(t, conn.ReasonIdleTimeout)
	if err := c.WaitClosed(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read error = %v, want ECONNRESET (idle close mode reset)", err)
	}
}

func TestEndOversizeFrame(t *testing.T) {
	e := newEnv(t, session.Config{MaxFrameSize: 1024})
	c := connect(t, e.url, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	go c.c.Write(context.Background(), websocket.MessageText, []byte(`{"id":"big","data":"`+strings.Repeat("x", 4<<20)+`"}`))
	prototest.WantError(t, c.Next(), "frame_too_large")
	err := c.WaitClosed()
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("close = %v, want status 1009", err)
	}
	e.WantEnd(t, conn.ReasonProtocolError)
}

func TestEndBadFrame(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url, true)
	c.c.Write(context.Background(), websocket.MessageText, []byte("hello?"))
	prototest.WantError(t, c.Next(), "bad_frame")
	c.WaitClosed()
	e.WantEnd(t, conn.ReasonProtocolError)
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.Registry.Shutdown(ctx, 0)
	}()
	if f := c.Next(); f.Str("type") != "shutdown" {
		t.Fatalf("got %v, want shutdown", f)
	}
	c.Send(map[string]any{"type": "bye"})
	if err := c.WaitClosed(); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close = %v, want status 1001", err)
	}
	e.WantEnd(t, conn.ReasonShutdown)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestInterleavedRequests: 1,000 requests from 50 goroutines on one
// WebSocket; every reply carries its request's id.
func TestInterleavedRequests(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url, true)
	r := prototest.NewRouter(t, c.Client, func(f prototest.Frame) bool { return f.Str("type") == "message" })
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Go(func() {
			for i := range 20 {
				id := fmt.Sprintf("w%d-%d", w, i)
				req := map[string]any{"id": id, "type": "publish", "channel": "load", "data": id}
				if i%3 == 1 {
					req = map[string]any{"id": id, "type": "ping"}
				}
				f, ok := r.Do(req)
				if !ok {
					return
				}
				if f.Str("id") != id || f.Str("type") == "error" {
					t.Errorf("request %s answered by %v", id, f)
				}
			}
		})
	}
	wg.Wait()
}

// TestLibraryPingAndClose: coder/websocket's client gets pongs to its
// pings, and its close handshake completes with the status it sent.
func TestLibraryPingAndClose(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url, true)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.c.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	admittedOK(t, c)
	if err := c.c.Close(websocket.StatusCode(4001), "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	e.WantEnd(t, conn.ReasonClosed)
}
