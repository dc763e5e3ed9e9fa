package tcp_test

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/protocol"
	"github.com/tether-run/tether/store"
)

// TestInterleavedRequests: 1,000 requests from 50 goroutines on one
// connection; every reply carries the id of its request, and every publish
// reply's cursor holds that request's data.
func TestInterleavedRequests(t *testing.T) {
	e := newEnv(t, protocol.Config{})
	c := connect(t, e.addr, true)
	var mu sync.Mutex
	waiting := map[string]chan frame{}
	go func() {
		for f := range c.frames {
			if f.str("type") != "reply" && f.str("type") != "pong" && f.str("type") != "error" {
				continue // messages of the subscriptions below
			}
			mu.Lock()
			ch := waiting[f.str("id")]
			delete(waiting, f.str("id"))
			mu.Unlock()
			if ch == nil {
				t.Errorf("reply %v matches no request in flight", f)
				continue
			}
			ch <- f
		}
	}()
	const workers, each = 50, 20
	cursors := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				req := map[string]any{"id": id}
				switch i % 4 {
				case 0, 1:
					req["type"], req["channel"], req["data"] = "publish", "load", map[string]any{"w": w, "i": i}
				case 2:
					req["type"], req["channel"] = "subscribe", fmt.Sprintf("w%d", w)
				case 3:
					req["type"], req["channel"] = "unsubscribe", fmt.Sprintf("w%d", w)
				}
				ch := make(chan frame, 1)
				mu.Lock()
				waiting[id] = ch
				mu.Unlock()
				c.send(req)
				var f frame
				select {
				case f = <-ch:
				case <-time.After(10 * time.Second):
					t.Errorf("no reply to %s", id)
					return
				}
				if f.str("id") != id || f.str("type") != "reply" {
					t.Errorf("request %s answered by %v", id, f)
					return
				}
				if req["type"] == "publish" {
					cursors[w] = append(cursors[w], f.str("cursor"))
				}
			}
		})
	}
	wg.Wait()
	// Each publish's cursor holds its own data.
	res, err := e.st.Read(t.Context(), "load", store.Start, 1000)
	if err != nil {
		t.Fatal(err)
	}
	byCursor := map[store.Cursor]string{}
	for _, m := range res.Messages {
		byCursor[m.ID] = string(m.Data)
	}
	n := 0
	for w, cs := range cursors {
		for k, cur := range cs {
			i := k/2*4 + k%2
			want := fmt.Sprintf(`{"i":%d,"w":%d}`, i, w)
			if got := byCursor[store.Cursor(cur)]; got != want {
				t.Fatalf("cursor %s holds %s, want %s", cur, got, want)
			}
			n++
		}
	}
	if n != workers*each/2 {
		t.Fatalf("%d publishes answered, want %d", n, workers*each/2)
	}
}

// TestTooManyRequests: past MaxInFlight a request is refused with
// too_many_requests and the connection goes on; every request is answered.
func TestTooManyRequests(t *testing.T) {
	e := newEnv(t, protocol.Config{MaxInFlight: 2})
	c := connect(t, e.addr, true)
	var batch []byte
	for i := range 100 {
		batch = fmt.Appendf(batch, `{"id":"r%d","type":"publish","channel":"a","data":%d}`+"\n", i, i)
	}
	c.sendRaw(batch)
	answered, refused := map[string]bool{}, 0
	for len(answered) < 100 {
		f := c.next()
		answered[f.str("id")] = true
		if f.str("type") == "error" {
			wantError(t, f, "too_many_requests")
			refused++
		}
	}
	t.Logf("%d of 100 pipelined publishes refused with MaxInFlight 2", refused)
	if refused == 0 {
		t.Fatal("no request was refused")
	}
	wantOK(t, c.request(map[string]any{"id": "after", "type": "subscribe", "channel": "a"}))
}

// TestSlowConsumer: a client that stops reading is ended with
// slow-consumer once its oldest undelivered message is MaxLag old, while
// another connection on the same channel keeps receiving every message
// with low latency. What the slow client did receive is a gapless prefix.
func TestSlowConsumer(t *testing.T) {
	const maxLag = time.Second
	e := newEnv(t, protocol.Config{MaxLag: maxLag, QueueBytes: 64 << 10})

	// The slow client: a small receive buffer, and it never reads.
	d := net.Dialer{}
	slowNC, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slowNC.Close()
	slowNC.(*net.TCPConn).SetReadBuffer(16 << 10)
	slowNC.Write([]byte(`{"id":"s","type":"subscribe","channel":"feed"}` + "\n"))

	fast := connect(t, e.addr, true)
	wantOK(t, fast.request(map[string]any{"id": "s", "type": "subscribe", "channel": "feed"}))
	pub := connect(t, e.addr, true)

	// Publish 4 KiB messages every 2ms until the slow client is ended.
	payload := strings.Repeat("x", 4000)
	var published []string
	var slowEnd ended
	start := time.Now()
loop:
	for i := 0; ; i++ {
		select {
		case slowEnd = <-e.ends:
			break loop
		default:
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("slow client not ended within 20s")
		}
		r := pub.request(map[string]any{"id": fmt.Sprint(i), "type": "publish", "channel": "feed", "data": payload})
		published = append(published, r.str("cursor"))
		time.Sleep(2 * time.Millisecond) // pacing the publisher, not synchronisation
	}
	if slowEnd.reason != conn.ReasonSlowConsumer {
		t.Fatalf("slow client ended with %q, want slow-consumer", slowEnd.reason)
	}
	t.Logf("slow client ended %v after it stopped reading, %d messages published", slowEnd.at.Sub(start), len(published))

	// The fast client got every message, in order; measure its latency.
	var lat []time.Duration
	for i, want := range published {
		f := fast.next()
		for f.str("type") != "message" {
			f = fast.next()
		}
		if f.str("cursor") != want {
			t.Fatalf("fast client message %d has cursor %s, want %s", i, f.str("cursor"), want)
		}
		ts, err := time.Parse(time.RFC3339Nano, f.str("time"))
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, f["_rx"].(time.Time).Sub(ts))
	}
	slices.Sort(lat)
	p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	t.Logf("fast client latency while the slow one stalled (%d messages): p50 %v, p99 %v, max %v", len(lat), p50, p99, worst)
	if worst > time.Second {
		t.Fatalf("fast client's worst latency %v, want well under MaxLag", worst)
	}

	// What the slow client received is a gapless prefix of the feed.
	slowNC.SetReadDeadline(time.Now().Add(5 * time.Second))
	dec := json.NewDecoder(slowNC)
	got := 0
	for {
		var f frame
		if err := dec.Decode(&f); err != nil {
			break
		}
		switch f.str("type") {
		case "message":
			if f.str("cursor") != published[got] {
				t.Fatalf("slow client message %d has cursor %s, want %s", got, f.str("cursor"), published[got])
			}
			got++
		case "error":
			wantError(t, f, "slow_consumer")
		}
	}
	t.Logf("slow client had received %d of %d messages", got, len(published))
}

// TestStalledReader: a reader that stops reading, with the default
// keepalive settings (TCP_USER_TIMEOUT 4s) and the default heartbeat
// (PingTimeout 10s), is ended with slow-consumer at MaxLag, past both. Its
// kernel keeps answering our zero-window probes: Linux >= 5.11 would still
// abort it at 4s (ETIMEDOUT, reason timeout) but for conn.StallGuard, and
// the heartbeat would end it at 10s but that a stalled peer cannot read
// our pings. The slow_consumer frame names the cursor it resumes after.
func TestStalledReader(t *testing.T) {
	t.Parallel() // MaxLag plus the time to fill the socket buffers
	const maxLag = 12 * time.Second
	e := newEnv(t, protocol.Config{MaxLag: maxLag})
	slowNC := dial(t, e.addr)
	slowNC.SetReadBuffer(16 << 10)
	// after "0": the publishes below may overtake the subscribe.
	slowNC.Write([]byte(`{"id":"s","type":"subscribe","channel":"feed","after":"0"}` + "\n"))
	pub := connect(t, e.addr, true)
	payload := strings.Repeat("x", 4000)
	var published []string
	start := time.Now()
	var x ended
loop:
	for i := 0; ; i++ {
		select {
		case x = <-e.ends:
			break loop
		default:
		}
		if time.Since(start) > 40*time.Second {
			t.Fatal("stalled reader not ended within 40s")
		}
		r := pub.request(map[string]any{"id": fmt.Sprint(i), "type": "publish", "channel": "feed", "data": payload})
		published = append(published, r.str("cursor"))
		time.Sleep(2 * time.Millisecond) // pacing the publisher, not synchronisation
	}
	took := x.at.Sub(start)
	t.Logf("stalled reader ended with %q %v after it stopped reading (MaxLag %v)", x.reason, took.Round(time.Millisecond), maxLag)
	if x.reason != conn.ReasonSlowConsumer {
		t.Fatalf("stalled reader ended with %q, want slow-consumer", x.reason)
	}
	if took < maxLag {
		t.Fatalf("ended after %v, before MaxLag %v", took, maxLag)
	}
	// It reads again: a gapless prefix of the feed, then, if it was still
	// taking data during the FlushTimeout, the slow_consumer frame.
	slowNC.SetReadDeadline(time.Now().Add(5 * time.Second))
	dec := json.NewDecoder(slowNC)
	got := 0
	for {
		var f frame
		if err := dec.Decode(&f); err != nil {
			break
		}
		switch f.str("type") {
		case "message":
			if f.str("cursor") != published[got] {
				t.Fatalf("message %d has cursor %s, want %s", got, f.str("cursor"), published[got])
			}
			got++
		case "error":
			wantError(t, f, "slow_consumer")
			t.Logf("slow_consumer frame: %v", f["cursors"])
		}
	}
	if got == 0 {
		t.Fatal("the stalled reader received no message before it stalled")
	}
	// It resumes after the last cursor it received, and misses nothing.
	c := connect(t, e.addr, true)
	wantOK(t, c.request(map[string]any{"id": "r", "type": "subscribe", "channel": "feed", "after": published[got-1]}))
	if f := c.next(); f.str("type") != "message" || f.str("cursor") != published[got] {
		t.Fatalf("after resuming got %v, want message %s", f, published[got])
	}
	t.Logf("it had received %d of %d messages and resumed after %s", got, len(published), published[got-1])
}
