package tcp_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
)

func TestPublishSubscribe(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	r := c.Request(map[string]any{"id": "p1", "type": "publish", "channel": "news", "data": map[string]any{"n": 1}})
	prototest.WantOK(t, r)
	first := r.Str("cursor")
	r = c.Request(map[string]any{"id": "s1", "type": "subscribe", "channel": "news", "after": "0"})
	prototest.WantOK(t, r)
	if r.Str("cursor") != "0" {
		t.Fatalf("subscribe cursor = %q, want 0", r.Str("cursor"))
	}
	m := c.Next()
	if m.Str("type") != "message" || m.Str("cursor") != first || m.Str("channel") != "news" {
		t.Fatalf("got %v, want message %s", m, first)
	}
	if d, _ := m["data"].(map[string]any); d["n"] != 1.0 {
		t.Fatalf("data = %v", m["data"])
	}
	c.Send(map[string]any{"id": "p2", "type": "publish", "channel": "news", "data": "two", "idempotency_key": "k"})
	// The reply and the message may come in either order.
	var got []string
	for len(got) < 2 {
		got = append(got, c.Next().Str("type"))
	}
	if !(got[0] == "reply" && got[1] == "message" || got[0] == "message" && got[1] == "reply") {
		t.Fatalf("got %v, want a reply and a message", got)
	}
	r = c.Request(map[string]any{"id": "p3", "type": "publish", "channel": "news", "data": "two", "idempotency_key": "k"})
	if r["duplicate"] != true {
		t.Fatalf("repeated publish: %v, want duplicate", r)
	}
	prototest.WantOK(t, c.Request(map[string]any{"id": "u1", "type": "unsubscribe", "channel": "news"}))
	prototest.WantError(t, c.Request(map[string]any{"id": "u2", "type": "unsubscribe", "channel": "news"}), "not_subscribed")
	prototest.WantError(t, c.Request(map[string]any{"id": "x", "type": "subscribe", "channel": "bad/name"}), "bad_channel")
	prototest.WantError(t, c.Request(map[string]any{"id": "x", "type": "subscribe", "channel": "news", "after": "zz"}), "bad_cursor")
	prototest.WantError(t, c.Request(map[string]any{"id": "x", "type": "subscribe", "channel": "news", "after": "99"}), "cursor_ahead")
	prototest.WantError(t, c.Request(map[string]any{"id": "x", "type": "publish", "channel": "news"}), "invalid_json")
	prototest.WantError(t, c.Request(map[string]any{"id": "x", "type": "frobnicate"}), "unknown_type")
	prototest.WantError(t, c.Request(map[string]any{"id": "x", "type": "subscribe", "channel": 7}), "bad_request")
	prototest.WantError(t, c.Request(map[string]any{"type": "publish", "channel": "news", "data": 1, "id": ""}), "bad_request")
	r = c.Request(map[string]any{"id": "ping1", "type": "ping"})
	if r.Str("type") != "pong" {
		t.Fatalf("got %v, want pong", r)
	}
	c.nc.Close()
	e.WantEnd(t, conn.ReasonClosed)
}

// TestSubscribeNew: without after, a subscription gets only what is
// published after it, and its reply names the cursor it starts after.
func TestSubscribeNew(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	old := c.Request(map[string]any{"id": "p1", "type": "publish", "channel": "a", "data": 1}).Str("cursor")
	r := c.Request(map[string]any{"id": "s1", "type": "subscribe", "channel": "a"})
	if r.Str("cursor") != old {
		t.Fatalf("subscribe cursor = %q, want latest %q", r.Str("cursor"), old)
	}
	c.Send(map[string]any{"id": "p2", "type": "publish", "channel": "a", "data": 2})
	for {
		f := c.Next()
		if f.Str("type") == "message" {
			if f["data"] != 2.0 {
				t.Fatalf("got %v, want only the new message", f)
			}
			break
		}
	}
}

func TestHelloSessionKey(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	c.Send(map[string]any{"type": "hello", "session": "user-7"})
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	infos := e.Registry.List()
	if len(infos) != 1 || infos[0].SessionKey != "user-7" || infos[0].Transport != registry.TransportTCP {
		t.Fatalf("registry lists %+v, want one tcp connection with session user-7", infos)
	}
	if len(infos[0].Channels) != 1 || infos[0].Channels[0] != "a" {
		t.Fatalf("channels = %v, want [a]", infos[0].Channels)
	}
}

func TestEndClosedAfterBye(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	c.Send(map[string]any{"type": "bye"})
	if err := c.WaitClosed(); err == nil || !errors.Is(err, errEOF) && !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("read error = %v, want EOF", err)
	}
	e.WantEnd(t, conn.ReasonClosed)
}

func TestEndReset(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	c.nc.SetLinger(0)
	c.nc.Close()
	e.WantEnd(t, conn.ReasonReset)
}

// TestEndHeartbeatTimeout: a client that sends a request and then never
// answers pings (nor sends anything), while its kernel acknowledges what
// it is sent (the client reads), is a busy peer, not a gone one: it is
// ended after BusyPeerTimeout, not PingTimeout.
func TestEndHeartbeatTimeout(t *testing.T) {
	const busy = 3 * time.Second
	took, pings := unansweredPings(t, session.Config{PingInterval: 200 * time.Millisecond, PingTimeout: time.Second, BusyPeerTimeout: busy})
	if took < busy-100*time.Millisecond || took > busy+3*time.Second {
		t.Fatalf("ended %v after the last frame, want about %v (BusyPeerTimeout)", took, busy)
	}
	if pings < 10 {
		t.Fatalf("saw %d pings, want many", pings)
	}
}

// TestEndHeartbeatTimeoutStrict: with BusyPeerTimeout negative the kernel
// is not asked, and the same client ends after PingTimeout.
func TestEndHeartbeatTimeoutStrict(t *testing.T) {
	took, pings := unansweredPings(t, session.Config{PingInterval: 200 * time.Millisecond, PingTimeout: time.Second, BusyPeerTimeout: -1})
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("ended %v after the last frame, want about 1s", took)
	}
	if pings < 3 {
		t.Fatalf("saw %d pings, want several", pings)
	}
}

// unansweredPings connects a client that reads every frame and answers
// none, and returns how long after its last frame the server ended it
// with heartbeat-timeout, and how many pings it saw.
func unansweredPings(t *testing.T, cfg session.Config) (took time.Duration, pings int) {
	t.Helper()
	e := newEnv(t, cfg)
	c := connect(t, e.addr, false)
	c.Send(map[string]any{"id": "s", "type": "subscribe", "channel": "a"})
	sent := time.Now()
	for f := range c.Frames {
		if f.Str("type") == "ping" {
			pings++
		}
	}
	x := e.WantEnd(t, conn.ReasonHeartbeatTimeout)
	took = x.At.Sub(sent)
	t.Logf("heartbeat-timeout noticed %v after the last frame (PingTimeout %v, BusyPeerTimeout %v), %d pings seen",
		took, cfg.PingTimeout, cfg.BusyPeerTimeout, pings)
	if !errors.Is(c.ReadErr(), syscall.ECONNRESET) {
		t.Fatalf("client read error = %v, want ECONNRESET (heartbeat-timeout resets)", c.ReadErr())
	}
	return took, pings
}

// TestEndIdleTimeout: answering pings keeps a connection alive but not
// busy: with no application data it ends with idle-timeout.
func TestEndIdleTimeout(t *testing.T) {
	e := newEnv(t, session.Config{PingInterval: 100 * time.Millisecond, PingTimeout: 300 * time.Millisecond, IdleTimeout: time.Second})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	last := time.Now()
	x := e.WantEnd(t, conn.ReasonIdleTimeout)
	took := x.At.Sub(last)
	t.Logf("idle-timeout noticed %v after the last application frame (timeout 1s)", took)
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("ended %v after the last application data, want about 1s", took)
	}
	if err := c.WaitClosed(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read error = %v, want ECONNRESET (default idle close mode is reset)", err)
	}
}

func TestEndIdleTimeoutGraceful(t *testing.T) {
	e := newEnv(t, session.Config{IdleTimeout: 300 * time.Millisecond, IdleCloseMode: conn.CloseGraceful})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	prototest.WantError(t, c.Next(), "idle_timeout")
	if err := c.WaitClosed(); err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("client read error = %v, want EOF", err)
	}
	e.WantEnd(t, conn.ReasonIdleTimeout)
}

func TestEndOversizeFrame(t *testing.T) {
	e := newEnv(t, session.Config{MaxFrameSize: 1024})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	// 10 MiB without a newline: the server must not buffer it.
	go c.sendRaw([]byte(`{"id":"big","type":"publish","channel":"a","data":"` + strings.Repeat("x", 10<<20)))
	prototest.WantError(t, c.Next(), "frame_too_large")
	c.WaitClosed()
	e.WantEnd(t, conn.ReasonProtocolError)
}

func TestEndBadFrame(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	c.sendRaw([]byte("GET / HTTP/1.1\r\n"))
	prototest.WantError(t, c.Next(), "bad_frame")
	c.WaitClosed()
	e.WantEnd(t, conn.ReasonProtocolError)
}

func TestKicked(t *testing.T) {
	for _, mode := range []conn.CloseMode{conn.CloseGraceful, conn.CloseReset} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, session.Config{})
			c := connect(t, e.addr, true)
			prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
			id := e.Registry.List()[0].ID
			if err := e.Registry.Close(id, mode); err != nil {
				t.Fatal(err)
			}
			if mode == conn.CloseGraceful {
				prototest.WantError(t, c.Next(), "kicked")
			}
			err := c.WaitClosed()
			if mode == conn.CloseReset && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read error = %v, want ECONNRESET", err)
			}
			e.WantEnd(t, conn.ReasonKicked)
		})
	}
}

// TestShutdown: Registry.Shutdown sends the shutdown frame; the client
// acknowledges with bye and the connection ends with reason shutdown.
func TestShutdown(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.Registry.Shutdown(ctx, time.Second)
	}()
	f := c.Next()
	if f.Str("type") != "shutdown" {
		t.Fatalf("got %v, want shutdown", f)
	}
	if ms, _ := f["reconnect_after_ms"].(float64); ms < 0 || ms > 1000 {
		t.Fatalf("reconnect_after_ms = %v, want within the 1s spread", f["reconnect_after_ms"])
	}
	c.Send(map[string]any{"type": "bye"})
	e.WantEnd(t, conn.ReasonShutdown)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestInvalidUTF8: a frame that is not UTF-8 (inside a JSON string, which
// encoding/json would accept) gets an invalid_utf8 error frame and ends
// the connection; nothing is stored.
func TestInvalidUTF8(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "b"}))
	c.sendRaw([]byte("{\"id\":\"p\",\"type\":\"publish\",\"channel\":\"a\",\"data\":\"\xc3\x28\"}\n"))
	prototest.WantError(t, c.Next(), "invalid_utf8")
	c.WaitClosed()
	e.WantEnd(t, conn.ReasonProtocolError)
	if b, err := e.Store.Bounds(context.Background(), "a"); err != nil || b.Earliest != "" {
		t.Fatalf("channel a: %+v, %v; want nothing stored", b, err)
	}
}
