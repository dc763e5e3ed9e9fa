//go:build linux

package conn

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/netnstest"
)

// A silent peer (cable pulled: no FIN, no RST) is only noticed by the
// kernel's keepalive and TCP_USER_TIMEOUT. These tests pull the cable for
// real: server and client sit in two network namespaces joined by a veth
// pair (192.0.2.0/24, TEST-NET-1, RFC 5737, used only inside them), and an
// nftables rule in the client's namespace drops everything in and out
// (package netnstest).
func TestSilentPeer(t *testing.T) {
	netnstest.Require(t)
	t.Parallel() // ~8 s of kernel timers
	small := KeepAlive{Idle: time.Second, Interval: time.Second, Count: 2, UserTimeout: 3 * time.Second}
	for _, tc := range []struct {
		name  string
		ka    KeepAlive
		h     func(calls chan<- *call) http.Handler
		event time.Duration // the long-poll is answered this long after the cable is pulled; 0 = never
		bound time.Duration
	}{
		// keepalive probes at 1 and 2 s, abort at 3 s (user timeout).
		{"idle/small", small, waitHandler, 0, 8 * time.Second},
		// probes at 2 and 3 s, abort at 4 s.
		{"idle/default", KeepAlive{}, waitHandler, 0, 10 * time.Second},
		// first unacked filler <= 0.5 s, retransmitted an RTO later, abort
		// 4 s after that retransmission: ~5 s.
		{"streaming/default", KeepAlive{}, heartbeatHandler, 0, 10 * time.Second},
		// the worst case: answered between the first keepalive probe and
		// the abort, then 3.5 s + RTO + 4 s: ~7.8 s.
		{"answered-while-probing/default", KeepAlive{}, answerThenWaitHandler, 3500 * time.Millisecond, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			took := pullCable(t, tc.ka, tc.h, tc.event)
			if took > tc.bound {
				t.Fatalf("silent peer noticed after %v, want < %v", took, tc.bound)
			}
			t.Logf("silent peer noticed %v after the cable was pulled", took.Round(time.Millisecond))
		})
	}
}

// pullCable runs a long-poll between two namespaces, drops all of the
// client's traffic, and returns how long the server took to report
// ReasonTimeout.
func pullCable(t *testing.T, ka KeepAlive, h func(chan<- *call) http.Handler, event time.Duration) time.Duration {
	ns := netnstest.Setup(t)
	var ln net.Listener
	err := netnstest.In(ns.Server, func() (err error) {
		ln, err = Listen(context.Background(), netnstest.ServerIP+":0", ka)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan *call, 1)
	ts := serve(t, ln, h(calls), WatchConfig{})
	var c net.Conn
	if err := netnstest.In(ns.Client, func() (err error) { c, err = net.Dial("tcp", ts.addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /poll HTTP/1.1\r\nHost: test\r\n\r\n")
	call := nextCall(t, calls)

	ns.Drop(t)
	pulled := time.Now()
	if event > 0 {
		time.AfterFunc(event, func() { call.release <- "late event" })
	}
	gone := waitGone(t, call, 30*time.Second)
	checkCause(t, call.ctx, ErrTimeout)
	if e := ts.nextEnd(t); e.Reason != ReasonTimeout {
		t.Fatalf("End = %+v, want timeout", e)
	}
	return gone.Sub(pulled)
}

// answerThenWaitHandler sends an event when released, then waits for
// more: the server writes once, at a moment of the test's choosing.
func answerThenWaitHandler(calls chan<- *call) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{ctx: r.Context(), w: w, release: make(chan string, 1), goneAt: make(chan time.Time, 1)}
		calls <- c
		for {
			select {
			case ev := <-c.release:
				io.WriteString(w, ev)
				http.NewResponseController(w).Flush()
			case <-r.Context().Done():
				c.goneAt <- time.Now()
				return
			}
		}
	})
}

// heartbeatHandler streams an SSE comment every 500 ms until its context
// ends: the server is sending while the peer goes silent.
func heartbeatHandler(calls chan<- *call) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		SetFiller(w, []byte(":\n"))
		c := &call{ctx: r.Context(), w: w, goneAt: make(chan time.Time, 1)}
		calls <- c
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			io.WriteString(w, ":\n")
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				c.goneAt <- time.Now()
				return
			case <-tick.C:
			}
		}
	})
}
