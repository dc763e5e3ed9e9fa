package ws_test

import (
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
)

// TestSlowConsumer: a WebSocket client that stops reading is ended with
// slow-consumer, while another client of the same channel keeps getting
// every message with low latency.
func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, session.Config{MaxLag: time.Second, QueueBytes: 64 << 10,
		// Not the heartbeat's test (TestStalledReader is): on a loaded
		// machine the socket buffers may take longer than the default
		// PingTimeout to fill, and a client that neither reads nor answers
		// pings for that long is rightly ended with heartbeat-timeout.
		PingInterval: 20 * time.Second, PingTimeout: time.Minute})

	subscribeSlow(t, e.url, "feed")

	fast := connect(t, e.url, true)
	prototest.WantOK(t, fast.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "feed"}))
	pub := connect(t, e.url, true)

	start := time.Now()
	slowEnd, published := e.PublishUntilEnd(t, pub.Client, "feed", 20*time.Second, "slow client")
	if slowEnd.Reason != conn.ReasonSlowConsumer {
		t.Fatalf("slow client ended with %q, want slow-consumer", slowEnd.Reason)
	}
	lat := fast.Latencies(published)
	t.Logf("slow client ended %v in; fast client latency over %d messages: p50 %v, p99 %v, max %v",
		slowEnd.At.Sub(start), len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
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
	e := newEnv(t, session.Config{MaxLag: maxLag})
	subscribeSlow(t, e.url, "feed")
	pub := connect(t, e.url, true)
	start := time.Now()
	x, _ := e.PublishUntilEnd(t, pub.Client, "feed", 40*time.Second, "stalled reader")
	took := x.At.Sub(start)
	t.Logf("stalled WebSocket reader ended with %q %v after it stopped reading (MaxLag %v)", x.Reason, took.Round(time.Millisecond), maxLag)
	if x.Reason != conn.ReasonSlowConsumer {
		t.Fatalf("stalled reader ended with %q, want slow-consumer", x.Reason)
	}
	if took < maxLag {
		t.Fatalf("ended after %v, before MaxLag %v", took, maxLag)
	}
}

// subscribeSlow dials a WebSocket client with a 16 KiB receive buffer,
// subscribes it to channel and never reads from it. It is closed when the
// test ends.
func subscribeSlow(t *testing.T, url, channel string) {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	slow, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.CloseNow() })
	slow.Write(t.Context(), websocket.MessageText, []byte(`{"id":"s","type":"subscribe","channel":"`+channel+`"}`))
}
