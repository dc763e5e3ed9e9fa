package tether_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
	"github.com/tether-run/tether/origin"
)

// TestSilentPeerParked pulls the cable of a client whose long-poll is
// parked, and of one whose SSE stream is idle (hijacked connections, no
// goroutine reading them): the kernel's keepalive and TCP_USER_TIMEOUT
// (the defaults: a silent peer within 10 s) end them with reason timeout,
// seen by conn.Ready as the socket's error.
func TestSilentPeerParked(t *testing.T) {
	ns := netnstest.Setup(t)
	n := startNode(t, func(c *tether.Config) {
		c.Insecure = true
		c.AllowedHosts = append(slices.Clone(origin.LoopbackHosts), netnstest.ServerIP)
	})
	var ln net.Listener
	if err := netnstest.In(ns.Server, func() (err error) {
		ln, err = tether.Listen(context.Background(), net.JoinHostPort(netnstest.ServerIP, "0"), conn.KeepAlive{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go n.srv.Serve(ln) // ends with the node's Shutdown
	addr := ln.Addr().String()
	dial := func() net.Conn {
		var c net.Conn
		if err := netnstest.In(ns.Client, func() (err error) {
			c, err = net.Dial("tcp", addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	after := n.publish("silent", `1`)
	parkedGET(t, addr, dial(), "silent", "wait=60s&after="+after)
	sse := dial()
	if _, err := sse.Write([]byte("GET /v1/channels/silent/events HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(sse), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("SSE: %v", err)
	}
	n.waitingPolls(1)
	eventually(t, 5*time.Second, "SSE waiting", func() bool {
		return n.metric("tether_http_waiting_requests", map[string]string{"route": "events"}) == 1
	})
	ns.Drop(t)
	start := time.Now()
	eventually(t, 15*time.Second, "both silent peers ended", func() bool {
		return n.ends("poll", "timeout") == 1 && n.ends("events", "timeout") == 1
	})
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("silent peers ended after %v, want within 10 s", el)
	}
	t.Logf("silent peers ended after %v", time.Since(start).Round(100*time.Millisecond))
}
