package ws_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
	"github.com/tether-run/tether/protocol"
	"github.com/tether-run/tether/store"
)

// TestSilentPeer pulls a WebSocket client's cable mid-session (package
// netnstest) and checks that the server ends it within 10 s with the
// default settings. As for TCP (tcp.TestSilentPeer) the kernel wins with
// reason timeout: TCP_USER_TIMEOUT (4 s) counts from the last thing heard
// from the peer, the heartbeat (10 s) from its last pong.
func TestSilentPeer(t *testing.T) {
	netnstest.Require(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		stream bool // a message every 100 ms while the cable is pulled
	}{
		{"idle", false},
		{"streaming", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := netnstest.Setup(t)
			e := newEnvIn(t, protocol.Config{}, conn.KeepAlive{}, ns.Server)
			dialIn := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				err = netnstest.In(ns.Client, func() (err error) {
					c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			}
			c := connectDial(t, e.url, true, dialIn)
			wantOK(t, c.request(map[string]any{"id": "s", "type": "subscribe", "channel": "feed"}))
			if f := c.request(map[string]any{"id": "p", "type": "ping"}); f.str("type") != "pong" {
				t.Fatalf("got %v, want pong", f)
			}
			if tc.stream {
				streamMessages(t, e.st, "feed", 100*time.Millisecond)
			}
			ns.Drop(t)
			pulled := time.Now()
			x := e.wantEndOf(t, conn.ReasonTimeout, conn.ReasonHeartbeatTimeout)
			took := x.at.Sub(pulled)
			t.Logf("silent WebSocket peer (%s) ended with %q %v after the cable was pulled", tc.name, x.reason, took.Round(time.Millisecond))
			if took > 10*time.Second {
				t.Fatalf("noticed after %v, want within 10s", took)
			}
		})
	}
}

// wantEndOf waits for the next connection end, which must have one of
// the reasons.
func (e *env) wantEndOf(t *testing.T, reasons ...conn.Reason) ended {
	t.Helper()
	select {
	case x := <-e.ends:
		for _, r := range reasons {
			if x.reason == r {
				return x
			}
		}
		t.Fatalf("end reason = %q, want one of %q", x.reason, reasons)
	case <-time.After(15 * time.Second):
		t.Fatalf("no connection end within 15s, want one of %q", reasons)
	}
	return ended{}
}

// streamMessages appends a 1 KB message to channel every interval until
// the test ends.
func streamMessages(t *testing.T, st store.Store, channel string, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		data := []byte(`"` + strings.Repeat("x", 1000) + `"`)
		for i := 0; ; i++ {
			if _, err := st.Append(ctx, channel, data, store.AppendOptions{}); err != nil && ctx.Err() == nil {
				t.Errorf("append %d: %v", i, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}
