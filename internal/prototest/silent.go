package prototest

import (
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
)

// SilentPeer pulls a client's cable mid-session (package netnstest: two
// network namespaces, an nftables rule dropping all of the client's
// traffic) and checks that the server ends it within 10 s with the
// default settings, with reason timeout or heartbeat-timeout, both for an
// idle client and for one a message is streamed to every 100 ms. The
// transport is named in the log; start builds a node whose server listens
// in ns.Server and returns it with a client, answering pings, dialled from
// ns.Client.
func SilentPeer(t *testing.T, transport string, start func(t *testing.T, ns netnstest.Pair) (*Node, *Client)) {
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
			n, c := start(t, ns)
			WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "feed"}))
			if f := c.Request(map[string]any{"id": "p", "type": "ping"}); f.Str("type") != "pong" {
				t.Fatalf("got %v, want pong", f)
			}
			if tc.stream {
				StreamMessages(t, n.Store, "feed", 100*time.Millisecond, 1000)
			}
			ns.Drop(t)
			pulled := time.Now()
			x := n.WantEndOf(t, conn.ReasonTimeout, conn.ReasonHeartbeatTimeout)
			took := x.At.Sub(pulled)
			t.Logf("silent %s peer (%s) ended with %q %v after the cable was pulled", transport, tc.name, x.Reason, took.Round(time.Millisecond))
			if took > 10*time.Second {
				t.Fatalf("noticed after %v, want within 10s", took)
			}
		})
	}
}
