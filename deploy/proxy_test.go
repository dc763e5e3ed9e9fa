package deploy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/internal/netnstest"
)

// what a proxy changes about what tether sees: the end reasons tether
// records for a client's departures made through it, and the address it
// records for the client.
type seen struct {
	// halfCloseAnswered: a client that sends its request and then
	// shutdown(SHUT_WR) still gets its answer.
	halfCloseAnswered bool
	// halfCloseReason: how tether records that long-poll's end.
	halfCloseReason string
	// pollCloseReason: how tether records a long-poll whose client closed
	// its socket (TLS close_notify, then FIN) while waiting.
	pollCloseReason string
	// pollResetReason: how tether records a long-poll whose client reset
	// (SO_LINGER 0).
	pollResetReason string
	// wsResetReason: how tether records a WebSocket whose client reset.
	wsResetReason string
	// remoteHost: the address tether records for the client.
	remoteHost string
}

// testThroughProxy runs long-poll, SSE and WebSocket through f, and the
// departures whose outcome want describes.
func testThroughProxy(t *testing.T, f *front, want seen) {
	t.Run("LongPoll", func(t *testing.T) { testLongPoll(t, f) })
	t.Run("SSE", func(t *testing.T) { testSSE(t, f) })
	t.Run("WebSocket", func(t *testing.T) { testWebSocket(t, f) })
	t.Run("RemoteAddress", func(t *testing.T) { testRemote(t, f, want.remoteHost) })
	t.Run("HalfClose", func(t *testing.T) { testHalfClose(t, f, want.halfCloseAnswered, want.halfCloseReason) })
	t.Run("Close", func(t *testing.T) { testPollClose(t, f, want.pollCloseReason) })
	t.Run("Reset", func(t *testing.T) { testPollReset(t, f, want.pollResetReason) })
	t.Run("WebSocketReset", func(t *testing.T) { testWSReset(t, f, want.wsResetReason) })
}

// publish publishes data on channel through the proxy.
func publish(t *testing.T, f *front, channel, data string) {
	t.Helper()
	resp, err := f.client().Post(f.url("/v1/channels/"+channel+"/messages"), "application/json", strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish through %s: %s %s", f.name, resp.Status, b)
	}
}

// waitWaiting waits until tether has n requests of route (poll, events)
// waiting for a message.
func waitWaiting(t *testing.T, f *front, route string, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d %s request(s) waiting in tether", int(n), route), func() bool {
		return f.tether.metric(t, "tether_http_waiting_requests", "route="+route) == n
	})
}

// testLongPoll: a message published after the poll started arrives.
func testLongPoll(t *testing.T, f *front) {
	type answer struct {
		Messages []struct {
			ID   string
			Data json.RawMessage
		}
		Next string
	}
	got := make(chan answer, 1)
	errs := make(chan error, 1)
	go func() {
		resp, err := f.client().Get(f.url("/v1/channels/lp/messages?after=0&wait=60s"))
		if err != nil {
			errs <- err
			return
		}
		defer resp.Body.Close()
		var a answer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			errs <- fmt.Errorf("%s: %v", resp.Status, err)
			return
		}
		got <- a
	}()
	waitWaiting(t, f, "poll", 1)
	publish(t, f, "lp", `{"n":1}`)
	select {
	case a := <-got:
		if len(a.Messages) != 1 || string(a.Messages[0].Data) != `{"n":1}` || a.Next != a.Messages[0].ID {
			t.Fatalf("long-poll through %s answered %+v, want the one message published", f.name, a)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(generous):
		t.Fatalf("long-poll through %s: no answer %v after the publish", f.name, generous)
	}

	// A wait that runs out answers with the keepalive: no messages, the
	// same cursor.
	resp, err := f.client().Get(f.url("/v1/channels/lp/messages?after=0&wait=0&limit=1"))
	if err != nil {
		t.Fatal(err)
	}
	var first answer
	json.NewDecoder(resp.Body).Decode(&first)
	resp.Body.Close()
	t0 := time.Now()
	resp, err = f.client().Get(f.url("/v1/channels/lp/messages?after=" + first.Next + "&wait=1s"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var keepalive answer
	if err := json.NewDecoder(resp.Body).Decode(&keepalive); err != nil || resp.StatusCode != 200 ||
		len(keepalive.Messages) != 0 || keepalive.Next != first.Next || time.Since(t0) < time.Second {
		t.Fatalf("keepalive through %s: %s %+v %v after %v, want 200, no messages, next %q, after 1s",
			f.name, resp.Status, keepalive, err, time.Since(t0), first.Next)
	}
}

// testSSE: the stream's preamble and each event reach the client while the
// stream stays open, not when a proxy buffer fills or the stream ends.
func testSSE(t *testing.T, f *front) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url("/v1/channels/sse/events?after=0"), nil)
	resp, err := f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("SSE through %s: %s, Content-Type %q", f.name, resp.Status, ct)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(what string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("SSE through %s: stream ended waiting for %s", f.name, what)
				}
				if l == "" || strings.HasPrefix(l, ":") {
					continue // event separators, heartbeats, probes
				}
				return l
			case <-time.After(generous):
				t.Fatalf("SSE through %s: no %s within %v (buffered?)", f.name, what, generous)
			}
		}
	}
	if l := next("retry: line"); !strings.HasPrefix(l, "retry:") {
		t.Fatalf("SSE through %s: first line %q, want retry:", f.name, l)
	}
	waitWaiting(t, f, "events", 1)
	for i := 1; i <= 2; i++ {
		data := fmt.Sprintf(`{"n":%d}`, i)
		publish(t, f, "sse", data)
		if l := next("id: line"); !strings.HasPrefix(l, "id: ") {
			t.Fatalf("SSE through %s: got %q, want an id: line", f.name, l)
		}
		if l := next("data: line"); l != "data: "+data {
			t.Fatalf("SSE through %s: got %q, want %q", f.name, l, "data: "+data)
		}
	}
}

// wsDial opens a WebSocket through f, and returns the TCP connection under
// it too.
func wsDial(t *testing.T, f *front) (*websocket.Conn, *net.TCPConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	tcp := make(chan *net.TCPConn, 1)
	tr := &http.Transport{TLSClientConfig: f.tls, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := f.dial(ctx, network, addr)
		if err == nil {
			tcp <- c.(*net.TCPConn)
		}
		return c, err
	}}
	c, resp, err := websocket.Dial(ctx, f.wsURL("/v1/ws"), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("WebSocket through %s: %v %s", f.name, err, status)
	}
	return c, <-tcp
}

// testWebSocket: subscribe, publish, receive, on one WebSocket.
func testWebSocket(t *testing.T, f *front) {
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	c, _ := wsDial(t, f)
	defer c.CloseNow()
	send := func(frame string) {
		if err := c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	type frame struct {
		Type, ID, Channel string
		OK                bool
		Data              json.RawMessage
	}
	read := func() frame {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("WebSocket through %s: %v", f.name, err)
		}
		var fr frame
		if err := json.Unmarshal(b, &fr); err != nil {
			t.Fatalf("WebSocket through %s: frame %s: %v", f.name, b, err)
		}
		return fr
	}
	send(`{"id":"1","type":"subscribe","channel":"ws","after":"0"}`)
	for fr := read(); fr.Type != "reply" || fr.ID != "1"; fr = read() {
	}
	send(`{"id":"2","type":"publish","channel":"ws","data":{"over":"ws"}}`)
	var replied, received bool
	for !replied || !received {
		switch fr := read(); {
		case fr.Type == "reply" && fr.ID == "2":
			if !fr.OK {
				t.Fatalf("publish over WebSocket through %s refused: %+v", f.name, fr)
			}
			replied = true
		case fr.Type == "message" && fr.Channel == "ws":
			if string(fr.Data) != `{"over":"ws"}` {
				t.Fatalf("WebSocket through %s: message %s", f.name, fr.Data)
			}
			received = true
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// testRemote: the address tether records for a client behind the proxy.
func testRemote(t *testing.T, f *front, wantHost string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url("/v1/channels/remote/events"), nil)
	resp, err := f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var remote string
	waitFor(t, "the SSE stream in GET /v1/connections", func() bool {
		for _, c := range f.tether.connections(t) {
			if c.Transport == "sse" {
				remote = c.Remote
				return true
			}
		}
		return false
	})
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		t.Fatalf("remote %q: %v", remote, err)
	}
	if host != wantHost {
		t.Fatalf("through %s tether records the client (%s) as %s, want %s", f.name, clientIP, host, wantHost)
	}
}

// pollRequest is a long-poll written by hand, for the departure tests.
const pollRequest = "GET /v1/channels/%s/messages?after=0&wait=60s HTTP/1.1\r\nHost: " + siteName + "\r\n\r\n"

// endCount is how many long-polls tether recorded as ended with reason.
func endCount(t *testing.T, f *front, reason string) float64 {
	t.Helper()
	return f.tether.metric(t, "tether_http_request_ends_total", "route=poll", "reason="+reason)
}

// halfClose shuts down the sending side of c: over TLS a close_notify
// alert (tls.Conn.CloseWrite), then, as over plain TCP, a FIN.
func halfClose(t *testing.T, c net.Conn, tc *net.TCPConn) {
	t.Helper()
	if tlc, ok := c.(*tls.Conn); ok {
		if err := tlc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// testHalfClose: a client sends its long-poll and half-closes its socket,
// then a message is published; does it get its answer, and how does
// tether record the poll's end?
func testHalfClose(t *testing.T, f *front, wantAnswer bool, wantReason string) {
	before := endCount(t, f, wantReason)
	c, tc := f.rawConn(t)
	defer c.Close()
	fmt.Fprintf(c, pollRequest, "halfclose")
	waitWaiting(t, f, "poll", 1)
	halfClose(t, c, tc)
	waitFor(t, fmt.Sprintf("tether to record the half-closed poll's end as %q", wantReason), func() bool {
		if wantAnswer {
			return true // the poll is still waiting: it ends with its answer, below
		}
		return endCount(t, f, wantReason) == before+1
	}, func() string { return f.tether.series(t, "tether_http_request_ends_total") })
	if wantAnswer {
		publish(t, f, "halfclose", `"after the half-close"`)
	}
	c.SetReadDeadline(time.Now().Add(generous))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if !wantAnswer {
		// The proxy took the half-close for a departure: whatever it
		// answers (nginx: nothing; Caddy: an empty 200), it is not
		// tether's answer.
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			t.Logf("half-closed client through %s got %s %q", f.name, resp.Status, b)
			if strings.Contains(string(b), `"messages"`) {
				t.Fatalf("half-closed client through %s got tether's answer, want the departure the test expects", f.name)
			}
		}
		return
	}
	if err != nil {
		t.Fatalf("half-closed client through %s got no answer: %v", f.name, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "after the half-close") {
		t.Fatalf("half-closed client through %s: %s %s", f.name, resp.Status, b)
	}
	waitFor(t, fmt.Sprintf("tether to record the poll's end as %q", wantReason), func() bool {
		return endCount(t, f, wantReason) == before+1
	}, func() string { return f.tether.series(t, "tether_http_request_ends_total") })
}

// testPollClose: a client that closes its socket while its long-poll waits
// is seen by tether as gone, with the reason the proxy makes of it.
func testPollClose(t *testing.T, f *front, wantReason string) {
	before := endCount(t, f, wantReason)
	c, _ := f.rawConn(t)
	fmt.Fprintf(c, pollRequest, "close")
	waitWaiting(t, f, "poll", 1)
	c.Close()
	waitFor(t, fmt.Sprintf("tether to record the closed poll's end as %q", wantReason), func() bool {
		return endCount(t, f, wantReason) == before+1
	}, func() string { return f.tether.series(t, "tether_http_request_ends_total") })
	waitWaiting(t, f, "poll", 0)
}

// testPollReset: a client that resets its waiting long-poll (SO_LINGER 0)
// is seen by tether as gone, with the reason the proxy makes of it.
func testPollReset(t *testing.T, f *front, wantReason string) {
	before := endCount(t, f, wantReason)
	c, tc := f.rawConn(t)
	fmt.Fprintf(c, pollRequest, "reset")
	waitWaiting(t, f, "poll", 1)
	tc.SetLinger(0)
	tc.Close()
	waitFor(t, fmt.Sprintf("tether to record the reset poll's end as %q", wantReason), func() bool {
		return endCount(t, f, wantReason) == before+1
	}, func() string { return f.tether.series(t, "tether_http_request_ends_total") })
	waitWaiting(t, f, "poll", 0)
}

// testWSReset: a WebSocket client that resets is seen by tether as gone.
func testWSReset(t *testing.T, f *front, wantReason string) {
	ends := func() float64 {
		return f.tether.metric(t, "tether_connection_ends_total", "transport=websocket", "reason="+wantReason)
	}
	before := ends()
	c, tc := wsDial(t, f)
	defer c.CloseNow()
	waitFor(t, "the WebSocket in GET /v1/connections", func() bool {
		for _, c := range f.tether.connections(t) {
			if c.Transport == "websocket" {
				return true
			}
		}
		return false
	})
	tc.SetLinger(0)
	tc.Close()
	waitFor(t, fmt.Sprintf("tether to record the reset WebSocket's end as %q", wantReason), func() bool {
		return ends() == before+1
	}, func() string { return f.tether.series(t, "tether_connection_ends_total") })
}

// testSilent pulls the cable of clients behind the proxy f (network
// namespaces and an nftables drop-all rule: no FIN, no RST) while one's
// long-poll waits and another's WebSocket is open. The proxy, not tether,
// holds their sockets: the proxy's TCP keepalive notices the idle
// long-poll's client and closes its upstream connection, which tether
// records as closed; tether's own heartbeat ends the WebSocket
// (heartbeat-timeout), its pings crossing the proxy.
func testSilent(t *testing.T, f *front, pair netnstest.Pair) {
	tp := f.tether
	poll, _ := f.rawConn(t)
	defer poll.Close()
	fmt.Fprintf(poll, pollRequest, "silent")
	ws, _ := wsDial(t, f)
	defer ws.CloseNow()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // answer tether's pings, as a live client does
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var fr struct{ Type, ID string }
			if json.Unmarshal(b, &fr) == nil && fr.Type == "ping" {
				ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"pong","id":%q}`, fr.ID))
			}
		}
	}()
	waitWaiting(t, f, "poll", 1)
	waitFor(t, "the WebSocket in GET /v1/connections", func() bool {
		for _, c := range tp.connections(t) {
			if c.Transport == "websocket" {
				return true
			}
		}
		return false
	})
	pollEnds := func() float64 { return endCount(t, f, "closed") }
	wsEnds := func() float64 {
		return tp.metric(t, "tether_connection_ends_total", "transport=websocket", "reason=heartbeat-timeout")
	}
	pollBefore, wsBefore := pollEnds(), wsEnds()

	pair.Drop(t)
	t0 := time.Now()
	// nginx's so_keepalive=4s:2s:3 gives up on an idle peer 4 s + 3 x 2 s
	// after its last packet, Caddy's keepalive_interval 2s after 2 s + 9 x
	// 2 s; tether's --heartbeat-timeout is 10 s (the peer is a trusted
	// proxy, whose kernel answers for the client: the heartbeat does not
	// ask it).
	var wsTook, pollTook time.Duration
	waitForWithin(t, 2*generous, "tether to end the silent WebSocket (heartbeat-timeout) and the long-poll (closed)", func() bool {
		if wsTook == 0 && wsEnds() == wsBefore+1 {
			wsTook = time.Since(t0)
		}
		if pollTook == 0 && pollEnds() == pollBefore+1 {
			pollTook = time.Since(t0)
		}
		return wsTook > 0 && pollTook > 0
	}, func() string {
		return tp.series(t, "tether_http_request_ends_total") + "\n" + tp.series(t, "tether_connection_ends_total")
	})
	t.Logf("through %s, after the cable was pulled: the silent WebSocket ended (heartbeat-timeout) in %v, the long-poll (closed, by %s's keepalive) in %v",
		f.name, wsTook.Round(100*time.Millisecond), f.name, pollTook.Round(100*time.Millisecond))
	if wsTook > 15*time.Second {
		t.Errorf("the silent WebSocket took %v, want about --heartbeat-timeout (10s)", wsTook)
	}
}
