package tether_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether"
)

type sseEvent struct{ id, event, data string }

// sseReader parses a text/event-stream as an EventSource would, keeping
// comment lines apart so tests can see heartbeats.
type sseReader struct {
	br       *bufio.Reader
	comments int
}

func (r *sseReader) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	var data []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data != nil || ev.event != "" {
				ev.data = strings.Join(data, "\n")
				return ev
			}
		case strings.HasPrefix(line, ":"):
			r.comments++
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		case strings.HasPrefix(line, "retry: "):
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
}

// openSSE opens the event stream of channel with optional headers.
func (n *node) openSSE(ctx context.Context, channel, query string, header map[string]string) *sseReader {
	n.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.base+"/v1/channels/"+channel+"/events?"+query, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		n.t.Fatalf("SSE answer %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sseReader{br: bufio.NewReader(resp.Body)}
}

func TestSSEResumeWithLastEventID(t *testing.T) {
	n := startNode(t, nil)
	var ids []string
	for i := 1; i <= 3; i++ {
		ids = append(ids, n.publish("feed", fmt.Sprint(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := n.openSSE(ctx, "feed", "after=0", map[string]string{"Last-Event-ID": ids[0]})
	for i, want := range []string{"2", "3"} {
		if ev := s.next(t); ev.id != ids[i+1] || ev.data != want || ev.event != "" {
			t.Fatalf("event %+v, want id %s data %s", ev, ids[i+1], want)
		}
	}
	id4 := n.publish("feed", `{"four":4}`)
	if ev := s.next(t); ev.id != id4 || ev.data != `{"four":4}` {
		t.Fatalf("live event %+v, want id %s", ev, id4)
	}
	// ?after= works too when no Last-Event-ID is sent.
	s2 := n.openSSE(ctx, "feed", "after="+ids[1], nil)
	if ev := s2.next(t); ev.id != ids[2] {
		t.Fatalf("after=%s: first event %+v, want %s", ids[1], ev, ids[2])
	}
}

func TestSSEHeartbeatAndGap(t *testing.T) {
	n := startNode(t, func(c *tether.Config) {
		c.Retention.MaxMessages = 2
		c.HTTP.SSEHeartbeat = 50 * time.Millisecond
	})
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, n.publish("hb", fmt.Sprint(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := n.openSSE(ctx, "hb", "after="+ids[0], nil)
	if ev := s.next(t); ev.event != "gap" || !strings.Contains(ev.data, `"earliest":"`+ids[3]+`"`) || ev.id != "" {
		t.Fatalf("first event %+v, want a gap naming earliest %s", ev, ids[3])
	}
	for _, want := range []string{"3", "4"} {
		if ev := s.next(t); ev.data != want {
			t.Fatalf("event %+v, want data %s", ev, want)
		}
	}
	comments := s.comments
	id := n.publishAfterHeartbeats(s, t, 2)
	if ev := s.next(t); ev.id != id {
		t.Fatalf("event %+v, want %s", ev, id)
	}
	if s.comments-comments < 2 {
		t.Fatalf("saw %d heartbeats, want at least 2", s.comments-comments)
	}
}

// publishAfterHeartbeats reads until k heartbeat comments have arrived on s
// (they come with no event, so reading a byte at a time is enough), then
// publishes and returns the cursor.
func (n *node) publishAfterHeartbeats(s *sseReader, t *testing.T, k int) string {
	seen := 0
	for seen < k {
		line, err := s.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, ":") {
			seen++
			s.comments++
		}
	}
	return n.publish("hb", `"after-heartbeats"`)
}

func TestShutdownAnswersWaitingClients(t *testing.T) {
	n := startNode(t, nil)
	after := n.publish("bye", `1`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := n.openSSE(ctx, "bye", "", nil)
	got := make(chan pollAnswer, 1)
	go func() {
		resp, err := http.Get(n.base + "/v1/channels/bye/messages?wait=60s&after=" + after)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		defer resp.Body.Close()
		var a pollAnswer
		decodeStatus(t, resp, 200, &a)
		got <- a
	}()
	n.waitingPolls(1)
	eventually(t, 5*time.Second, "SSE waiting", func() bool {
		return n.metric("tether_http_waiting_requests", map[string]string{"route": "events"}) == 1
	})
	start := time.Now()
	n.stop()
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("stop took %v with two waiting clients", el)
	}
	a, ok := <-got
	if !ok || len(a.Messages) != 0 || a.Next != after {
		t.Fatalf("long-poll at shutdown got %+v, want the keepalive with next %s", a, after)
	}
	if ev := s.next(t); ev.event != "shutdown" {
		t.Fatalf("SSE at shutdown got %+v, want a shutdown event", ev)
	}
}

// TestSSEShutdownEventOnce: on a server stop, an SSE stream gets exactly
// one shutdown event, as its last, and then the stream ends. (The stream
// used to run its end path twice and send the event twice.)
func TestSSEShutdownEventOnce(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := n.openSSE(ctx, "once", "", nil)
	eventually(t, 5*time.Second, "SSE waiting", func() bool {
		return n.metric("tether_http_waiting_requests", map[string]string{"route": "events"}) == 1
	})
	n.stop()
	shutdowns, last := 0, ""
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			break // the stream ended
		}
		if line == "event: shutdown\n" {
			shutdowns++
		}
		if strings.HasPrefix(line, "event: ") || strings.HasPrefix(line, "id: ") {
			last = strings.TrimSpace(line)
		}
	}
	if shutdowns != 1 || last != "event: shutdown" {
		t.Fatalf("got %d shutdown events (last event %q), want exactly one, as the last", shutdowns, last)
	}
}

// rawSSE opens an SSE stream of channel on a raw HTTP/1.1 connection and
// returns it with its reader past the response head.
func rawSSE(t *testing.T, n *node, channel string) (*net.TCPConn, *sseReader) {
	t.Helper()
	c := rawGET(t, n.addr(), "/v1/channels/"+channel+"/events")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Vary") != "Origin" ||
		len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("SSE head: %d %v %v", resp.StatusCode, resp.TransferEncoding, resp.Header)
	}
	return c, &sseReader{br: bufio.NewReader(resp.Body)}
}

// An SSE stream over HTTP/1.1 is written on its hijacked connection, in
// chunks; its client's departure is seen on the socket: a reset or a
// full close ends it with its reason, a half-closed client keeps reading.
func TestSSEHijackedDepartures(t *testing.T) {
	for _, tc := range []struct{ how, reason string }{{"reset", "reset"}, {"close", "closed"}} {
		t.Run(tc.how, func(t *testing.T) {
			n := startNode(t, nil)
			c, s := rawSSE(t, n, "dep")
			id := n.publish("dep", `1`)
			if ev := s.next(t); ev.id != id {
				t.Fatalf("event %+v, want %s", ev, id)
			}
			start := time.Now()
			if tc.how == "reset" {
				c.SetLinger(0)
			}
			c.Close()
			eventually(t, 5*time.Second, "departure noticed", func() bool { return n.ends("events", tc.reason) == 1 })
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("noticed after %v", el)
			}
		})
	}
	t.Run("half-close", func(t *testing.T) {
		n := startNode(t, nil)
		c, s := rawSSE(t, n, "half")
		defer c.Close()
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		// The probes (comment lines) come, then the events go on.
		eventually(t, 5*time.Second, "probed", func() bool {
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := s.br.Peek(1)
			return err == nil
		})
		c.SetReadDeadline(time.Time{})
		id := n.publish("half", `"still reading"`)
		if ev := s.next(t); ev.id != id {
			t.Fatalf("event %+v, want %s", ev, id)
		}
		if s.comments == 0 {
			t.Fatal("no probe before the event")
		}
		if got := n.ends("events", "closed") + n.ends("events", "reset"); got != 0 {
			t.Fatalf("a half-closed client counted as gone (%v)", got)
		}
	})
}

// An idle SSE stream over HTTP/1.1 holds no goroutine: net/http's
// connection goroutine and background read are gone with the hijack, its
// subscription waits parked with the channel's, its writer runs only
// while something is queued, conn.Ready watches its socket. A publish
// reaches every stream, and they go back to idle.
func TestSSEIdleGoroutines(t *testing.T) {
	n := startNode(t, nil)
	c0, s0 := rawSSE(t, n, "idle-sse") // the server's own goroutines exist before the count
	n.publish("idle-sse", `0`)
	s0.next(t)
	const total = 100
	g0 := runtime.NumGoroutine()
	streams := make([]*sseReader, total)
	for i := range streams {
		c, s := rawSSE(t, n, "idle-sse")
		defer c.Close()
		streams[i] = s
	}
	eventually(t, 5*time.Second, "streams waiting", func() bool {
		return n.metric("tether_http_waiting_requests", map[string]string{"route": "events"}) == total+1
	})
	// Constants: the channel's store waiter, conn.Ready's epoll drain.
	const slack = 4
	check := func(when string) {
		t.Helper()
		if g := settledGoroutines(g0 + slack); g > g0+slack {
			t.Fatalf("%s: %d goroutines with %d idle SSE streams, %d before: %.2f per stream, want none", when, g, total, g0, float64(g-g0)/total)
		}
	}
	check("opened")
	id := n.publish("idle-sse", `1`)
	for i, s := range streams {
		if ev := s.next(t); ev.id != id {
			t.Fatalf("stream %d: %+v, want %s", i, ev, id)
		}
	}
	check("after a publish")
	c0.Close()
}
