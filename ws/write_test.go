package ws_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
)

// TestFrameLengths: the data frames the transport writes itself, gathered
// into one write per wake-up, reach a conforming client (coder/websocket)
// intact and in order at every payload length form of RFC 6455 §5.2
// (7 bits, 16 bits, 64 bits) and at their edges.
func TestFrameLengths(t *testing.T) {
	e := newEnv(t, session.Config{})
	sub := connect(t, e.url, true)
	prototest.WantOK(t, sub.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "sizes"}))
	pub := connect(t, e.url, true)
	// Payload lengths around 125/126 and 65535/65536 once framed: the
	// message frame adds its envelope, so each size is tried with a few
	// neighbours.
	var sizes []int
	for _, n := range []int{0, 60, 125, 126, 65535, 65536, 300_000} {
		for d := -80; d <= 0; d += 20 {
			sizes = append(sizes, max(n+d, 0))
		}
	}
	for i, n := range sizes {
		data, _ := json.Marshal(strings.Repeat("x", n))
		prototest.WantOK(t, pub.Request(map[string]any{"id": strconv.Itoa(i), "type": "publish", "channel": "sizes", "data": json.RawMessage(data)}))
	}
	for _, n := range sizes {
		f := sub.Next()
		if f.Str("type") != "message" {
			t.Fatalf("got %v, want a message of %d bytes", f, n)
		}
		got, _ := f["data"].(string)
		if len(got) != n || strings.Trim(got, "x") != "" {
			t.Fatalf("message of %d bytes arrived with %d", n, len(got))
		}
	}
}
