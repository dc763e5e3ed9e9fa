package tether_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tether-run/tether"
)

// A TCP client that reads every frame and answers no ping is kept up to
// BusyPeerTimeout on its kernel's evidence, unless its peer address is a
// trusted proxy: then the kernel that answers is the proxy's, and the
// heartbeat ends the connection after PingTimeout.
func TestBusyPeerNotAskedOfTrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		proxies []string
		want    time.Duration
	}{{nil, 3 * time.Second}, {[]string{"127.0.0.1"}, time.Second}} {
		n := startNode(t, func(c *tether.Config) {
			c.TCPAddr = "127.0.0.1:0"
			c.TrustedProxies = tc.proxies
			c.Session.PingInterval = 200 * time.Millisecond
			c.Session.PingTimeout = time.Second
			c.Session.BusyPeerTimeout = 3 * time.Second
		})
		c, err := net.Dial("tcp", n.srv.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, `{"type":"subscribe","id":"s","channel":"a"}`+"\n")
		sent := time.Now()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadBytes('\n'); err != nil {
				break // the server ended it
			}
		}
		took := time.Since(sent)
		c.Close()
		t.Logf("trusted proxies %v: ended %v after the last frame (PingTimeout 1s, BusyPeerTimeout 3s)", tc.proxies, took)
		if took < tc.want-200*time.Millisecond || took > tc.want+2*time.Second {
			t.Errorf("trusted proxies %v: ended %v after the last frame, want about %v", tc.proxies, took, tc.want)
		}
	}
}
