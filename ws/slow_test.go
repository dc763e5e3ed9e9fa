package ws_test

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/protocol"
)

// TestSlowConsumer: a WebSocket client that stops reading is ended with
// slow-consumer, while another client of the same channel keeps getting
// every message with low latency.
func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, protocol.Config{MaxLag: time.Second, QueueBytes: 64 << 10})

	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	slow, _, err := websocket.Dial(t.Context(), e.url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.Write(t.Context(), websocket.MessageText, []byte(`{"id":"s","type":"subscribe","channel":"feed"}`))

	fast := connect(t, e.url, true)
	wantOK(t, fast.request(map[string]any{"id": "s", "type": "subscribe", "channel": "feed"}))
	pub := connect(t, e.url, true)

	payload := strings.Repeat("x", 4000)
	var published []string
	var slowEnd ended
	start := time.Now()
loop:
	for i := 0; ; i++ {
		select {
		case slowEnd = <-e.ends:
			break loop
		default:
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("slow client not ended within 20s")
		}
		r := pub.request(map[string]any{"id": fmt.Sprint(i), "type": "publish", "channel": "feed", "data": payload})
		published = append(published, r.str("cursor"))
		time.Sleep(2 * time.Millisecond) // pacing the publisher, not synchronisation
	}
	if slowEnd.reason != conn.ReasonSlowConsumer {
		t.Fatalf("slow client ended with %q, want slow-consumer", slowEnd.reason)
	}
	var lat []time.Duration
	for i, want := range published {
		f := fast.next()
		for f.str("type") != "message" {
			f = fast.next()
		}
		if f.str("cursor") != want {
			t.Fatalf("fast client message %d has cursor %s, want %s", i, f.str("cursor"), want)
		}
		ts, err := time.Parse(time.RFC3339Nano, f.str("time"))
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, f["_rx"].(time.Time).Sub(ts))
	}
	slices.Sort(lat)
	t.Logf("slow client ended %v in; fast client latency over %d messages: p50 %v, p99 %v, max %v",
		slowEnd.at.Sub(start), len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	if lat[len(lat)-1] > time.Second {
		t.Fatalf("fast client's worst latency %v, want well under MaxLag", lat[len(lat)-1])
	}
}

// TestStalledReader: a WebSocket client that stops reading, with the
// default keepalive settings (TCP_USER_TIMEOUT 4s) and heartbeat
// (PingTimeout 10s), is ended with slow-consumer at MaxLag, past both; see
// tcp.TestStalledReader.
func TestStalledReader(t *testing.T) {
	t.Parallel() // MaxLag plus the time to fill the socket buffers
	const maxLag = 12 * time.Second
	e := newEnv(t, protocol.Config{MaxLag: maxLag})
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	slow, _, err := websocket.Dial(t.Context(), e.url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.Write(t.Context(), websocket.MessageText, []byte(`{"id":"s","type":"subscribe","channel":"feed"}`))
	pub := connect(t, e.url, true)
	payload := strings.Repeat("x", 4000)
	start := time.Now()
	var x ended
loop:
	for i := 0; ; i++ {
		select {
		case x = <-e.ends:
			break loop
		default:
		}
		if time.Since(start) > 40*time.Second {
			t.Fatal("stalled reader not ended within 40s")
		}
		pub.request(map[string]any{"id": fmt.Sprint(i), "type": "publish", "channel": "feed", "data": payload})
		time.Sleep(2 * time.Millisecond) // pacing the publisher, not synchronisation
	}
	took := x.at.Sub(start)
	t.Logf("stalled WebSocket reader ended with %q %v after it stopped reading (MaxLag %v)", x.reason, took.Round(time.Millisecond), maxLag)
	if x.reason != conn.ReasonSlowConsumer {
		t.Fatalf("stalled reader ended with %q, want slow-consumer", x.reason)
	}
	if took < maxLag {
		t.Fatalf("ended after %v, before MaxLag %v", took, maxLag)
	}
}
