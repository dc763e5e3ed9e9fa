package tcp_test

import (
	"net"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
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
	prototest.SilentPeer(t, "TCP", func(t *testing.T, ns netnstest.Pair) (*prototest.Node, *prototest.Client) {
		e := newEnvWith(t, envOpts{netns: ns.Server})
		return e.Node, newClient(t, dialIn(t, ns.Client, e.addr), true).Client
	})
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
	e := newEnvWith(t, envOpts{netns: ns.Server, proto: session.Config{MaxLag: maxLag}})
	nc := dialIn(t, ns.Client, e.addr)
	nc.SetReadBuffer(16 << 10)
	nc.Write([]byte(`{"id":"s","type":"subscribe","channel":"feed"}` + "\n"))
	start := time.Now()
	prototest.StreamMessages(t, e.Store, "feed", 2*time.Millisecond, 4000)
	// The socket buffers fill in about 5 s at 2 MB/s; by 8 s the window
	// has been closed for longer than TCP_USER_TIMEOUT (4 s), so the
	// guard has taken over. A scenario step, not synchronisation.
	select {
	case x := <-e.Ends:
		t.Fatalf("stalled reader ended with %q before the cable was pulled", x.Reason)
	case <-time.After(8 * time.Second):
	}
	ns.Drop(t)
	pulled := time.Now()
	x := e.NextEnd(t, 30*time.Second)
	t.Logf("stalled-then-silent peer ended with %q %v after the cable was pulled, %v after it stopped reading (MaxLag %v)",
		x.Reason, x.At.Sub(pulled).Round(time.Millisecond), x.At.Sub(start).Round(time.Millisecond), maxLag)
	if x.Reason != conn.ReasonSlowConsumer {
		t.Fatalf("end reason = %q, want slow-consumer", x.Reason)
	}
}

// dialIn dials addr from network namespace ns; the connection is closed
// when the test ends.
func dialIn(t *testing.T, ns, addr string) *net.TCPConn {
	t.Helper()
	var nc net.Conn
	if err := netnstest.In(ns, func() (err error) {
		nc, err = net.Dial("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc.(*net.TCPConn)
}
