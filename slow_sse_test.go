package tether_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
)

// An SSE client that stops reading is ended as a slow consumer once it has
// fallen MaxLag behind, with the default TCP settings (whose
// 4 s user timeout would otherwise end it as "timeout"), while another
// SSE client on the same channel keeps receiving.
func TestSSEStalledReaderIsSlowConsumer(t *testing.T) {
	const maxLag = 6 * time.Second
	reasons := make(chan conn.Reason, 10)
	n := startNode(t, func(c *tether.Config) { c.Session.MaxLag = maxLag },
		tether.OnDisconnect(func(_ registry.Info, r conn.Reason) { reasons <- r }))
	// The stalled client: a small receive buffer, and it never reads.
	raw, err := net.Dial("tcp", n.addr())
	if err != nil {
		t.Fatal(err)
	}
	stalled := raw.(*net.TCPConn)
	stalled.SetReadBuffer(4096)
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /v1/channels/slow/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	healthy := n.openSSE(ctx, "slow", "", nil)
	eventually(t, 5*time.Second, "both streams waiting", func() bool {
		return n.metric("tether_http_waiting_requests", map[string]string{"route": "events"}) == 2
	})

	payload := `"` + strings.Repeat("x", 4000) + `"`
	start := time.Now()
	var reason conn.Reason
	for i := 0; reason == "" && i < 5000; i++ { // bounded; ends long before
		id := n.publish("slow", payload)
		if ev := healthy.next(t); ev.id != id { // the healthy client keeps up, in order
			t.Fatalf("healthy client got %+v, want %s", ev, id)
		}
		select {
		case reason = <-reasons:
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(start) > maxLag+20*time.Second {
			t.Fatalf("stalled client not ended after %v", time.Since(start))
		}
	}
	took := time.Since(start)
	t.Logf("stalled SSE reader ended %q %v after publishing began (max lag %v)", reason, took.Round(time.Millisecond), maxLag)
	if reason != conn.ReasonSlowConsumer {
		t.Fatalf("stalled reader ended with %q, want slow-consumer", reason)
	}
	if took < maxLag {
		t.Fatalf("ended after %v, before the max lag %v", took, maxLag)
	}
}
