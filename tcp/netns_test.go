package tcp_test

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

// TestSilentPeer pulls a TCP client's cable mid-session (package
// netnstest: two network namespaces, an nftables rule dropping all of the
// client's traffic) and checks that the server ends it within 10 s with
// the default settings: protocol pings every 5 s, PingTimeout 10 s, and
// conn.KeepAlive's TCP_USER_TIMEOUT 4 s.
//
// The kernel wins, reason timeout: the client was last heard at its last
// pong, so the heartbeat fires 10 s after it, but the kernel aborts about
// 4 s after it stops hearing from the peer (keepalive when idle; when a
// ping or message is unacknowledged, 4 s after its first retransmission),
// which is 4-9.5 s after that pong. heartbeat-timeout would be reported
// only if the kernel were slower, e.g. with KeepAlive.UserTimeout
// disabled.
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
			e := newEnvWith(t, envOpts{netns: ns.Server})
			var nc net.Conn
			if err := netnstest.In(ns.Client, func() (err error) {
				nc, err = net.Dial("tcp", e.addr)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			c := newClient(t, nc.(*net.TCPConn), true)
			wantOK(t, c.request(map[string]any{"id": "s", "type": "subscribe", "channel": "feed"}))
			if f := c.request(map[string]any{"id": "p", "type": "ping"}); f.str("type") != "pong" {
				t.Fatalf("got %v, want pong", f)
			}
			if tc.stream {
				streamMessages(t, e.st, "feed", 100*time.Millisecond, 1000)
			}
			ns.Drop(t)
			pulled := time.Now()
			x := e.nextEnd(t, 15*time.Second)
			took := x.at.Sub(pulled)
			t.Logf("silent TCP peer (%s) ended with %q %v after the cable was pulled", tc.name, x.reason, took.Round(time.Millisecond))
			if x.reason != conn.ReasonTimeout && x.reason != conn.ReasonHeartbeatTimeout {
				t.Fatalf("end reason = %q, want timeout or heartbeat-timeout", x.reason)
			}
			if took > 10*time.Second {
				t.Fatalf("noticed after %v, want within 10s", took)
			}
		})
	}
}

// TestStalledThenSilent: a client stops reading, and once the server has
// taken it for a slow reader (window closed, TCP_USER_TIMEOUT cleared by
// conn.StallGuard) its cable is pulled. The kernel no longer times it out
// within seconds; MaxLag ends it, with slow-consumer. This is the price of
// letting MaxLag decide for stalled readers: the bound for such a peer is
// MaxLag, not 10 s.
func TestStalledThenSilent(t *testing.T) {
	netnstest.Require(t)
	t.Parallel()
	const maxLag = 12 * time.Second
	ns := netnstest.Setup(t)
	e := newEnvWith(t, envOpts{netns: ns.Server, proto: protocol.Config{MaxLag: maxLag}})
	var nc net.Conn
	if err := netnstest.In(ns.Client, func() (err error) {
		nc, err = net.Dial("tcp", e.addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	nc.Write([]byte(`{"id":"s","type":"subscribe","channel":"feed"}` + "\n"))
	start := time.Now()
	streamMessages(t, e.st, "feed", 2*time.Millisecond, 4000)
	// The socket buffers fill in about 5 s at 2 MB/s; by 8 s the window
	// has been closed for longer than TCP_USER_TIMEOUT (4 s), so the
	// guard has taken over. A scenario step, not synchronisation.
	select {
	case x := <-e.ends:
		t.Fatalf("stalled reader ended with %q before the cable was pulled", x.reason)
	case <-time.After(8 * time.Second):
	}
	ns.Drop(t)
	pulled := time.Now()
	x := e.nextEnd(t, 30*time.Second)
	t.Logf("stalled-then-silent peer ended with %q %v after the cable was pulled, %v after it stopped reading (MaxLag %v)",
		x.reason, x.at.Sub(pulled).Round(time.Millisecond), x.at.Sub(start).Round(time.Millisecond), maxLag)
	if x.reason != conn.ReasonSlowConsumer {
		t.Fatalf("end reason = %q, want slow-consumer", x.reason)
	}
}

// streamMessages appends a message of size bytes to channel every
// interval until the test ends.
func streamMessages(t *testing.T, st store.Store, channel string, interval time.Duration, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		data := []byte(`"` + strings.Repeat("x", size) + `"`)
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
