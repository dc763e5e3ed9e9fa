package tcp_test

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
)

// TestInterleavedRequests: 1,000 requests from 50 goroutines on one
// connection; every reply carries the id of its request, and every publish
// reply's cursor holds that request's data.
func TestInterleavedRequests(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.addr, true)
	r := prototest.NewRouter(t, c.Client, func(f prototest.Frame) bool {
		return f.Str("type") != "reply" && f.Str("type") != "pong" && f.Str("type") != "error" // messages of the subscriptions below
	})
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
				f, ok := r.Do(req)
				if !ok {
					return
				}
				if f.Str("id") != id || f.Str("type") != "reply" {
					t.Errorf("request %s answered by %v", id, f)
					return
				}
				if req["type"] == "publish" {
					cursors[w] = append(cursors[w], f.Str("cursor"))
				}
			}
		})
	}
	wg.Wait()
	// Each publish's cursor holds its own data.
	res, err := e.Store.Read(t.Context(), "load", store.Start, 1000)
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
	e := newEnv(t, session.Config{MaxInFlight: 2})
	c := connect(t, e.addr, true)
	var batch []byte
	for i := range 100 {
		batch = fmt.Appendf(batch, `{"id":"r%d","type":"publish","channel":"a","data":%d}`+"\n", i, i)
	}
	c.sendRaw(batch)
	answered, refused := map[string]bool{}, 0
	for len(answered) < 100 {
		f := c.Next()
		answered[f.Str("id")] = true
		if f.Str("type") == "error" {
			prototest.WantError(t, f, "too_many_requests")
			refused++
		}
	}
	t.Logf("%d of 100 pipelined publishes refused with MaxInFlight 2", refused)
	if refused == 0 {
		t.Fatal("no request was refused")
	}
	prototest.WantOK(t, c.Request(map[string]any{"id": "after", "type": "subscribe", "channel": "a"}))
}

// TestSlowConsumer: a client that stops reading is ended with
// slow-consumer once its oldest undelivered message is MaxLag old, while
// another connection on the same channel keeps receiving every message
// with low latency. What the slow client did receive is a gapless prefix.
func TestSlowConsumer(t *testing.T) {
	const maxLag = time.Second
	e := newEnv(t, session.Config{MaxLag: maxLag, QueueBytes: 64 << 10,
		// Not the heartbeat's test (TestStalledReader is): on a loaded
		// machine the socket buffers may take longer than the default
		// PingTimeout to fill, and a client that neither reads nor answers
		// pings for that long is rightly ended with heartbeat-timeout.
		PingInterval: 20 * time.Second, PingTimeout: time.Minute})

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
	prototest.WantOK(t, fast.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "feed"}))
	pub := connect(t, e.addr, true)

	// Publish 4 KiB messages every 2ms until the slow client is ended.
	start := time.Now()
	slowEnd, published := e.PublishUntilEnd(t, pub.Client, "feed", 20*time.Second, "slow client")
	if slowEnd.Reason != conn.ReasonSlowConsumer {
		t.Fatalf("slow client ended with %q, want slow-consumer", slowEnd.Reason)
	}
	t.Logf("slow client ended %v after it stopped reading, %d messages published", slowEnd.At.Sub(start), len(published))

	// The fast client got every message, in order; measure its latency.
	lat := fast.Latencies(published)
	p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	t.Logf("fast client latency while the slow one stalled (%d messages): p50 %v, p99 %v, max %v", len(lat), p50, p99, worst)
	if worst > time.Second {
		t.Fatalf("fast client's worst latency %v, want well under MaxLag", worst)
	}

	// What the slow client received is a gapless prefix of the feed.
	got := readPrefix(t, slowNC, published)
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
	e := newEnv(t, session.Config{MaxLag: maxLag})
	slowNC := dial(t, e.addr)
	slowNC.SetReadBuffer(16 << 10)
	// after "0": the publishes below may overtake the subscribe.
	slowNC.Write([]byte(`{"id":"s","type":"subscribe","channel":"feed","after":"0"}` + "\n"))
	pub := connect(t, e.addr, true)
	start := time.Now()
	x, published := e.PublishUntilEnd(t, pub.Client, "feed", 40*time.Second, "stalled reader")
	took := x.At.Sub(start)
	t.Logf("stalled reader ended with %q %v after it stopped reading (MaxLag %v)", x.Reason, took.Round(time.Millisecond), maxLag)
	if x.Reason != conn.ReasonSlowConsumer {
		t.Fatalf("stalled reader ended with %q, want slow-consumer", x.Reason)
	}
	if took < maxLag {
		t.Fatalf("ended after %v, before MaxLag %v", took, maxLag)
	}
	// It reads again: a gapless prefix of the feed, then, if it was still
	// taking data during the FlushTimeout, the slow_consumer frame.
	got := readPrefix(t, slowNC, published)
	if got == 0 {
		t.Fatal("the stalled reader received no message before it stalled")
	}
	// It resumes after the last cursor it received, and misses nothing.
	c := connect(t, e.addr, true)
	prototest.WantOK(t, c.Request(map[string]any{"id": "r", "type": "subscribe", "channel": "feed", "after": published[got-1]}))
	if f := c.Next(); f.Str("type") != "message" || f.Str("cursor") != published[got] {
		t.Fatalf("after resuming got %v, want message %s", f, published[got])
	}
	t.Logf("it had received %d of %d messages and resumed after %s", got, len(published), published[got-1])
}

// readPrefix reads what nc has left for up to 5s and checks it is a
// gapless prefix of the messages published, any error frame being
// slow_consumer. It returns how many messages it read.
func readPrefix(t *testing.T, nc net.Conn, published []string) int {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	dec := json.NewDecoder(nc)
	got := 0
	for {
		var f prototest.Frame
		if err := dec.Decode(&f); err != nil {
			return got
		}
		switch f.Str("type") {
		case "message":
			if f.Str("cursor") != published[got] {
				t.Fatalf("message %d has cursor %s, want %s", got, f.Str("cursor"), published[got])
			}
			got++
		case "error":
			prototest.WantError(t, f, "slow_consumer")
			t.Logf("slow_consumer frame: %v", f["cursors"])
		}
	}
}
