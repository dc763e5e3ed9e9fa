package tether_test

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// idleCost measures what n idle HTTP/1.1 requests of one kind keep in the
// server, in-process: heap and goroutine stacks per request, and
// goroutines per request. open opens one (a bare net.Conn each on the
// client's side, counted in) and returns it once the server holds it as
// idle; held waits until the server holds all n.
func idleCost(t *testing.T, n int, open func() net.Conn, held func()) (heap, stacks int64, goroutines float64) {
	t.Helper()
	var before runtime.MemStats
	heapInUse()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		conns = append(conns, open())
	}
	held()
	// Let the handlers that hand over their connection return.
	g := settledGoroutines(g0 + 8)
	var after runtime.MemStats
	heapInUse()
	runtime.ReadMemStats(&after)
	heap = (int64(after.HeapInuse) - int64(before.HeapInuse)) / int64(n)
	stacks = (int64(after.StackInuse) - int64(before.StackInuse)) / int64(n)
	return heap, stacks, float64(g-g0) / float64(n)
}

func heapInUse() {
	runtime.GC()
	runtime.GC() // sync.Pool keeps its items for one more GC
}

// TestIdleCostPollAndSSE: what a waiting long-poll and an idle SSE stream
// keep in the server (HTTP/1.1). Before the hijack (main at 79f39b3): a
// waiting long-poll 2 goroutines, an idle SSE stream 2; see the report in
// docs/architecture.md for the heap figures.
func TestIdleCostPollAndSSE(t *testing.T) {
	const n = 500
	t.Run("long-poll", func(t *testing.T) {
		nd := startNode(t, nil)
		after := nd.publish("cost", `0`)
		bw := bufio.NewReader(rawGET(t, nd.addr(), "/v1/channels/cost/messages?wait=0"))
		if resp, err := http.ReadResponse(bw, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("warm-up: %v", err)
		}
		heap, stacks, g := idleCost(t, n, func() net.Conn {
			return rawGET(t, nd.addr(), "/v1/channels/cost/messages?wait=120s&after="+after)
		}, func() { nd.waitingPolls(n) })
		t.Logf("per waiting long-poll: heap %d B, goroutine stacks %d B, goroutines %.3f", heap, stacks, g)
		if g > 0.02 || heap > idleHTTPHeapBound {
			t.Fatalf("a waiting long-poll keeps %.3f goroutines and %d B of heap, want none and at most %d", g, heap, idleHTTPHeapBound)
		}
	})
	t.Run("sse", func(t *testing.T) {
		nd := startNode(t, nil)
		c0, _ := rawSSE(t, nd, "cost")
		defer c0.Close()
		waiting := func(k int) {
			eventually(t, 10*time.Second, "streams waiting", func() bool {
				return nd.metric("tether_http_waiting_requests", map[string]string{"route": "events"}) == float64(k)
			})
		}
		waiting(1)
		heap, stacks, g := idleCost(t, n, func() net.Conn {
			c, _ := rawSSE(t, nd, "cost")
			return c
		}, func() { waiting(n + 1) })
		t.Logf("per idle SSE stream: heap %d B, goroutine stacks %d B, goroutines %.3f", heap, stacks, g)
		if g > 0.02 || heap > idleHTTPHeapBound {
			t.Fatalf("an idle SSE stream keeps %.3f goroutines and %d B of heap, want none and at most %d", g, heap, idleHTTPHeapBound)
		}
	})
}

// idleHTTPHeapBound bounds the heap of a waiting long-poll or an idle SSE
// stream (issue 14: at most 12 KB of RSS each, the kernel's socket
// buffers not counted in RSS).
const idleHTTPHeapBound = 10 << 10
