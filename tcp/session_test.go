package tcp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
)

// TestGap: a subscription whose cursor retention passed gets a gap frame,
// then what remains.
func TestGap(t *testing.T) {
	e := newEnvWith(t, envOpts{retention: store.Retention{MaxMessages: 2}})
	c := connect(t, e.addr, true)
	var cursors []string
	for i := range 5 {
		cursors = append(cursors, c.Request(map[string]any{"id": fmt.Sprint(i), "type": "publish", "channel": "a", "data": i}).Str("cursor"))
	}
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a", "after": cursors[0]}))
	g := c.Next()
	if g.Str("type") != "gap" || g.Str("after") != cursors[0] || g.Str("earliest") != cursors[3] {
		t.Fatalf("got %v, want a gap after %s, earliest %s", g, cursors[0], cursors[3])
	}
	for _, want := range cursors[3:] {
		if m := c.Next(); m.Str("cursor") != want {
			t.Fatalf("got %v, want message %s", m, want)
		}
	}
}

// TestUnsubscribeStopsMessages: once the unsubscribe reply arrives, no
// message of the channel follows, even with a backlog queued.
func TestUnsubscribeStopsMessages(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	var batch []byte
	for i := range 500 {
		batch = fmt.Appendf(batch, `{"id":"p%d","type":"publish","channel":"a","data":"%s"}`+"\n", i, strings.Repeat("y", 1000))
		if i%50 == 49 {
			c.sendRaw(batch) // at most 64 in flight
			batch = batch[:0]
			for range 50 {
				c.Next()
			}
		}
	}
	// Requests run concurrently: unsubscribe once subscribed.
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a", "after": "0"}))
	c.Send(map[string]any{"id": "u", "type": "unsubscribe", "channel": "a"})
	unsubscribed := false
	for {
		f := c.Next()
		switch {
		case f.Str("id") == "u":
			prototest.WantOK(t, f)
			unsubscribed = true
			// The next frame answers this ping: no message came between.
			if f := c.Request(map[string]any{"id": "after", "type": "ping"}); f.Str("type") != "pong" {
				t.Fatalf("got %v, want pong", f)
			}
			return
		case f.Str("type") == "message" && unsubscribed:
			t.Fatalf("message %v after the unsubscribe reply", f)
		}
	}
}

// TestSessionReadmission: a second connection with the same session key
// is admitted only after the first one's cleanup (OnDisconnect) returned.
func TestSessionReadmission(t *testing.T) {
	events := make(chan string, 10)
	e := newEnvWith(t, envOpts{events: events})
	a := connect(t, e.addr, true)
	a.Send(map[string]any{"type": "hello", "session": "k"})
	prototest.WantOK(t, a.Request(map[string]any{"id": "1", "type": "subscribe", "channel": "x"}))
	b := connect(t, e.addr, true)
	b.Send(map[string]any{"type": "hello", "session": "k"})
	b.Send(map[string]any{"id": "1", "type": "subscribe", "channel": "x"})
	// b waits for admission: its request is not answered while a lives.
	select {
	case f := <-b.Frames:
		t.Fatalf("second connection served (%v) while the first lives", f)
	case <-time.After(300 * time.Millisecond): // a bounded look for a wrong early answer
	}
	a.nc.Close()
	prototest.WantOK(t, b.Next())
	want := []string{"connect k", "disconnect k", "connect k"}
	for _, w := range want {
		if got := <-events; got != w {
			t.Fatalf("hook order: got %q, want %q (of %v)", got, w, want)
		}
	}
}

// TestStopEndsSessions: the one shutdown path, Registry.Shutdown, ends
// live connections with reason shutdown, and Server.Stop, which has no
// shutdown of its own, waits for their goroutines.
func TestStopEndsSessions(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.srv.StopAccepting()
	if err := e.Registry.Shutdown(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e.WantEnd(t, conn.ReasonShutdown)
	c.WaitClosed()
}

// TestNotAdmitted: a connection the Registry refuses (shutting down) gets
// an unavailable error frame and is closed.
func TestNotAdmitted(t *testing.T) {
	e := newEnv(t, session.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Registry.Shutdown(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c := connect(t, e.addr, true)
	c.Send(map[string]any{"id": "s", "type": "subscribe", "channel": "a"})
	prototest.WantError(t, c.Next(), "unavailable")
	c.WaitClosed()
}

// TestShutdownMany: Registry.Shutdown tells 100 clients, with reconnect
// hints spread over the window. Half acknowledge with bye; the others
// ignore it and are closed at the deadline. All end with reason shutdown,
// and every client resumes after its last cursor on the same store.
func TestShutdownMany(t *testing.T) {
	e := newEnv(t, session.Config{})
	const n = 100
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = connect(t, e.addr, true)
		prototest.WantOK(t, clients[i].Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a", "after": "0"}))
	}
	pub := clients[0]
	last := pub.Request(map[string]any{"id": "p", "type": "publish", "channel": "a", "data": 1}).Str("cursor")

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Registry.Shutdown(ctx, time.Second) }()
	hints := map[float64]bool{}
	for i, c := range clients {
		var f prototest.Frame
		for f = c.Next(); f.Str("type") != "shutdown"; f = c.Next() {
			if f.Str("type") == "message" && f.Str("cursor") != last {
				t.Fatalf("client %d got %v, want message %s", i, f, last)
			}
		}
		hints[f["reconnect_after_ms"].(float64)] = true
		if i%2 == 0 {
			c.Send(map[string]any{"type": "bye"})
		}
	}
	reasons := map[conn.Reason]int{}
	for range n {
		reasons[e.NextEnd(t, 10*time.Second).Reason]++
	}
	err := <-done
	t.Logf("Shutdown returned %v after %v; ends %v; %d distinct reconnect hints", err, time.Since(start), reasons, len(hints))
	if reasons[conn.ReasonShutdown] != n {
		t.Fatalf("ends %v, want %d shutdown", reasons, n)
	}
	if len(hints) < n/2 {
		t.Fatalf("%d distinct reconnect hints for %d clients, want them spread", len(hints), n)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Fatalf("shutdown took %v with a 3s deadline", took)
	}
	// The store keeps what was acknowledged: a client resumes from its cursor.
	res, err := e.Store.Read(t.Context(), "a", "0", 10)
	if err != nil || len(res.Messages) != 1 || string(res.Messages[0].ID) != last {
		t.Fatalf("after shutdown the channel holds %+v, %v; want message %s", res.Messages, err, last)
	}
}
