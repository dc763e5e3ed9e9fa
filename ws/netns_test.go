package ws_test

import (
	"context"
	"net"
	"testing"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
)

// TestSilentPeer pulls a WebSocket client's cable mid-session (package
// netnstest) and checks that the server ends it within 10 s with the
// default settings. As for TCP (tcp.TestSilentPeer) the kernel wins with
// reason timeout: TCP_USER_TIMEOUT (4 s) counts from the last thing heard
// from the peer, the heartbeat (10 s) from its last pong.
func TestSilentPeer(t *testing.T) {
	prototest.SilentPeer(t, "WebSocket", func(t *testing.T, ns netnstest.Pair) (*prototest.Node, *prototest.Client) {
		e := newEnvIn(t, session.Config{}, conn.KeepAlive{}, ns.Server)
		dialIn := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = netnstest.In(ns.Client, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
		return e.Node, connectDial(t, e.url, true, dialIn).Client
	})
}
