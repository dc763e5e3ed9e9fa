package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/wire"
)

func TestPublishSubscribe(t *testing.T) {
	srv := startServerTCP(t)
	for _, tc := range []struct {
		name, url string
		transport string
	}{{"websocket", srv.ws(), TransportWebSocket}, {"tcp", "tcp://" + srv.tcp, TransportTCP}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := newStates()
			c := dial(t, tc.url, Config{OnState: st.on, HTTPURL: srv.http(), Session: "s-" + tc.name})
			if sc, _ := st.wait(t, 5*time.Second, 0, "connected", func(sc StateChange) bool { return sc.State == StateConnected }); sc.Transport != tc.transport {
				t.Fatalf("transport %q, want %q", sc.Transport, tc.transport)
			}
			ch := "news-" + tc.name
			rec := newRecorder()
			if _, err := c.Subscribe(ctx, ch, SubscribeOptions{After: "0", Handler: rec.handle}); err != nil {
				t.Fatal(err)
			}
			var cursors []string
			for i := range 3 {
				res, err := c.Publish(ctx, ch, map[string]int{"n": i})
				if err != nil {
					t.Fatal(err)
				}
				cursors = append(cursors, res.Cursor)
			}
			got := rec.waitN(t, 10*time.Second, EventMessage, 3)
			for i, ev := range got {
				if ev.Cursor != cursors[i] || string(ev.Data) != fmt.Sprintf(`{"n":%d}`, i) {
					t.Errorf("event %d = %s %s, want %s {\"n\":%d}", i, ev.Cursor, ev.Data, cursors[i], i)
				}
			}
			res, err := c.Publish(ctx, ch, 42, WithIdempotencyKey("k-"+tc.name))
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.Publish(ctx, ch, 42, WithIdempotencyKey("k-"+tc.name))
			if err != nil || again.Cursor != res.Cursor || !again.Duplicate {
				t.Fatalf("repeat with the same key = %+v, %v; want cursor %s, duplicate", again, err, res.Cursor)
			}
			if !hasSession(t, srv.http(), "s-"+tc.name) {
				t.Fatalf("no connection with session s-%s in /v1/connections", tc.name)
			}
			_, err = c.Subscribe(ctx, "no/such", SubscribeOptions{})
			if ef, ok := errors.AsType[*wire.ErrorFrame](err); !ok || ef.Code != wire.CodeBadChannel {
				t.Fatalf("Subscribe(bad channel) = %v, want bad_channel", err)
			}
		})
	}
}

// streamScenario: one client publishes n messages, one at a time, while
// another follows the channel; the server is SIGKILLed and restarted
// twice mid-stream, and publishes made while it is down wait in the
// queue. The follower must see every message exactly once, in order; the
// channel must hold each once.
func streamScenario(t *testing.T, srv *server, pubURL, subURL string, pubCfg, subCfg Config, wantTransport string) {
	const n = 300
	ctx := context.Background()
	st := newStates()
	subCfg.OnState = st.on
	subCfg.BackoffMax = 300 * time.Millisecond
	pubCfg.BackoffMax = 300 * time.Millisecond
	sub := dial(t, subURL, subCfg)
	pub := dial(t, pubURL, pubCfg)
	if sc, _ := st.wait(t, 5*time.Second, 0, "connected", func(sc StateChange) bool { return sc.State == StateConnected }); sc.Transport != wantTransport {
		t.Fatalf("subscriber's transport %q, want %q", sc.Transport, wantTransport)
	}
	rec := newRecorder()
	if _, err := sub.Subscribe(ctx, "stream", SubscribeOptions{After: "0", Handler: rec.handle}); err != nil {
		t.Fatal(err)
	}

	pubErr := make(chan error, 1)
	go func() {
		for i := range n {
			pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			_, err := pub.Publish(pctx, "stream", map[string]int{"n": i})
			cancel()
			if err != nil {
				pubErr <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		pubErr <- nil
	}()

	var offline []chan error
	for round, at := range []int{n / 3, 2 * n / 3} {
		rec.waitN(t, 60*time.Second, EventMessage, at)
		srv.kill()
		// While it is down: publishes queue, and go out in order.
		for k := range 5 {
			done := make(chan error, 1)
			offline = append(offline, done)
			queued := pub.Stats().QueuedPublishes
			go func() {
				pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				_, err := pub.Publish(pctx, "offline", fmt.Sprintf("r%d-%d", round, k))
				done <- err
			}()
			waitFor(t, 10*time.Second, "publish queued", func() bool { return pub.Stats().QueuedPublishes > queued })
		}
		srv.start(t)
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	for _, done := range offline {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.Publish(ctx, "stream", "end"); err != nil {
		t.Fatal(err)
	}
	got := rec.waitN(t, 60*time.Second, EventMessage, n+1)
	if len(got) != n+1 {
		t.Fatalf("%d messages, want %d", len(got), n+1)
	}
	for i, ev := range got[:n] {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(ev.Data) != want {
			t.Fatalf("message %d = %s, want %s", i, ev.Data, want)
		}
	}
	if string(got[n].Data) != `"end"` {
		t.Fatalf("last message %s, want \"end\"", got[n].Data)
	}
	for _, ev := range rec.snapshot() {
		if ev.Kind != EventMessage {
			t.Fatalf("unexpected %v event: %+v", ev.Kind, ev)
		}
	}
	stored := readAll(t, srv.http(), "stream")
	if len(stored) != n+1 {
		t.Fatalf("the channel holds %d messages, want %d (a publish was appended twice, or lost)", len(stored), n+1)
	}
	var off []string
	for _, m := range readAll(t, srv.http(), "offline") {
		var s string
		json.Unmarshal(m, &s)
		off = append(off, s)
	}
	var want []string
	for r := range 2 {
		for k := range 5 {
			want = append(want, fmt.Sprintf("r%d-%d", r, k))
		}
	}
	if !slices.Equal(off, want) {
		t.Fatalf("offline publishes stored as %v, want %v", off, want)
	}
	s := sub.Stats()
	t.Logf("subscriber: %d reconnects, %d duplicates dropped; publisher: %d reconnects", s.Reconnects, s.Duplicates, pub.Stats().Reconnects)
	if s.Reconnects < 2 {
		t.Fatalf("subscriber reconnected %d times, want 2 or more", s.Reconnects)
	}
}

func TestKillRestartExactlyOnce(t *testing.T) {
	t.Run("websocket", func(t *testing.T) {
		srv := startServer(t)
		streamScenario(t, srv, srv.ws(), srv.ws(), Config{}, Config{}, TransportWebSocket)
	})
	t.Run("tcp", func(t *testing.T) {
		srv := startServerTCP(t)
		streamScenario(t, srv, "tcp://"+srv.tcp, "tcp://"+srv.tcp, Config{}, Config{}, TransportTCP)
	})
}

func TestFallbackToSSE(t *testing.T) {
	srv := startServer(t)
	proxy := startNoUpgradeProxy(t, srv.http())
	streamScenario(t, srv, proxy.URL, proxy.URL, Config{}, Config{}, TransportSSE)
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if proxy.refused == 0 {
		t.Fatal("the proxy refused no upgrade: the test did not test the fallback")
	}
}

func TestFallbackToLongPoll(t *testing.T) {
	srv := startServer(t)
	proxy := startBlockingProxy(t, srv.http(), true)
	streamScenario(t, srv, proxy.URL, proxy.URL, Config{}, Config{}, TransportLongPoll)
}

// The client notices a server that went silent (SIGSTOP: its kernel still
// answers TCP) within its heartbeat timeout, and the server's shutdown
// notice with its reconnect hint.
func TestDeadServerAndShutdownHint(t *testing.T) {
	srv := startServer(t, "--shutdown-spread", "500ms")
	st := newStates()
	c := dial(t, srv.ws(), Config{HeartbeatTimeout: time.Second, BackoffMax: 200 * time.Millisecond, OnState: st.on})
	_, i := st.wait(t, 5*time.Second, 0, "connected", func(sc StateChange) bool { return sc.State == StateConnected })

	srv.cmd.Process.Signal(syscall.SIGSTOP)
	t0 := time.Now()
	sc, i := st.wait(t, 5*time.Second, i, "disconnected", func(sc StateChange) bool { return sc.State == StateDisconnected })
	took := time.Since(t0)
	t.Logf("silent server noticed after %v (heartbeat timeout 1s): %s", took.Round(time.Millisecond), sc.Reason)
	if sc.Reason != "heartbeat-timeout" || took > 2*time.Second {
		t.Fatalf("disconnected after %v for %q, want heartbeat-timeout within 2s", took, sc.Reason)
	}
	srv.cmd.Process.Signal(syscall.SIGCONT)
	_, i = st.wait(t, 15*time.Second, i, "reconnected", func(sc StateChange) bool { return sc.State == StateConnected })

	srv.cmd.Process.Signal(syscall.SIGTERM)
	sc, i = st.wait(t, 10*time.Second, i, "shutdown", func(sc StateChange) bool { return sc.State == StateDisconnected })
	if sc.Reason != "server-shutdown" || sc.Retry > 500*time.Millisecond {
		t.Fatalf("disconnected for %q, retry %v; want server-shutdown within the 500ms spread", sc.Reason, sc.Retry)
	}
	<-srv.done
	srv.start(t)
	st.wait(t, 15*time.Second, i, "reconnected after restart", func(sc StateChange) bool { return sc.State == StateConnected })
	_ = c
}

// A subscription resumes after a cursor the application supplies, and one
// "from now" resumes after a restart without losing what came meanwhile.
func TestResumeFromAppCursorAndFromNow(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	c := dial(t, srv.ws(), Config{BackoffMax: 200 * time.Millisecond})
	var cursors []string
	for i := range 5 {
		res, err := c.Publish(ctx, "saved", i)
		if err != nil {
			t.Fatal(err)
		}
		cursors = append(cursors, res.Cursor)
	}
	rec := newRecorder()
	sub, err := c.Subscribe(ctx, "saved", SubscribeOptions{After: cursors[2], Handler: rec.handle})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitN(t, 10*time.Second, EventMessage, 2)
	if string(got[0].Data) != "3" || string(got[1].Data) != "4" {
		t.Fatalf("after cursor %s: %s, %s; want 3, 4", cursors[2], got[0].Data, got[1].Data)
	}
	waitFor(t, 5*time.Second, "Cursor moves to the last handled", func() bool { return sub.Cursor() == cursors[4] })

	now := newRecorder()
	if _, err := c.Subscribe(ctx, "fromnow", SubscribeOptions{Handler: now.handle}); err != nil {
		t.Fatal(err)
	}
	// Published through another client while this one is cut off: it
	// must still arrive once this one is back.
	srv.kill()
	srv.start(t)
	other := dial(t, srv.ws(), Config{})
	for i := range 3 {
		if _, err := other.Publish(ctx, "fromnow", i); err != nil {
			t.Fatal(err)
		}
	}
	got = now.waitN(t, 20*time.Second, EventMessage, 3)
	for i, ev := range got {
		if string(ev.Data) != strconv.Itoa(i) {
			t.Fatalf("from-now message %d = %s, want %d", i, ev.Data, i)
		}
	}
}

// Messages retention removed before the subscription read them are
// reported as a gap, over WebSocket and over the SSE fallback.
func TestGapReported(t *testing.T) {
	srv := startServer(t, "--retention-max-messages", "5")
	proxy := startNoUpgradeProxy(t, srv.http())
	pollProxy := startBlockingProxy(t, srv.http(), true)
	ctx := context.Background()
	c := dial(t, srv.ws(), Config{})
	var cursors []string
	for i := range 20 {
		res, err := c.Publish(ctx, "trimmed", i)
		if err != nil {
			t.Fatal(err)
		}
		cursors = append(cursors, res.Cursor)
	}
	waitFor(t, 20*time.Second, "retention trims the channel", func() bool { return len(readAll(t, srv.http(), "trimmed")) <= 5 })
	for _, tc := range []struct{ name, url string }{{"websocket", srv.ws()}, {"sse", proxy.URL}, {"long-poll", pollProxy.URL}} {
		t.Run(tc.name, func(t *testing.T) {
			sc := dial(t, tc.url, Config{})
			rec := newRecorder()
			if _, err := sc.Subscribe(ctx, "trimmed", SubscribeOptions{After: cursors[1], Handler: rec.handle}); err != nil {
				t.Fatal(err)
			}
			msgs := rec.waitN(t, 10*time.Second, EventMessage, 5)
			evs := rec.snapshot()
			if evs[0].Kind != EventGap || evs[0].GapAfter != cursors[1] || evs[0].GapEarliest != cursors[15] {
				t.Fatalf("first event %+v, want a gap after %s, earliest %s", evs[0], cursors[1], cursors[15])
			}
			for i, ev := range msgs {
				if string(ev.Data) != strconv.Itoa(15+i) {
					t.Fatalf("message %d = %s, want %d", i, ev.Data, 15+i)
				}
			}
		})
	}
}

// While offline, publishes queue up to the bound; one more fails at once;
// one whose ctx ends before it was sent is withdrawn and never appended.
func TestPublishQueueWhileOffline(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	c := dial(t, srv.ws(), Config{MaxQueuedPublishes: 2, BackoffMax: 200 * time.Millisecond})
	srv.kill()
	waitFor(t, 5*time.Second, "disconnected", func() bool { return c.State() != StateConnected })

	kept := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, "q", "kept")
		kept <- err
	}()
	waitFor(t, 5*time.Second, "first queued", func() bool { return c.Stats().QueuedPublishes == 1 })
	wctx, withdraw := context.WithCancel(ctx)
	withdrawn := make(chan error, 1)
	go func() {
		_, err := c.Publish(wctx, "q", "withdrawn")
		withdrawn <- err
	}()
	waitFor(t, 5*time.Second, "second queued", func() bool { return c.Stats().QueuedPublishes == 2 })
	if _, err := c.Publish(ctx, "q", "refused"); !errors.Is(err, ErrPublishQueueFull) {
		t.Fatalf("third Publish = %v, want ErrPublishQueueFull", err)
	}
	withdraw()
	if err := <-withdrawn; !errors.Is(err, context.Canceled) {
		t.Fatalf("withdrawn Publish = %v, want context.Canceled", err)
	}
	if n := c.Stats().QueuedPublishes; n != 1 {
		t.Fatalf("%d queued after the withdrawal, want 1", n)
	}
	srv.start(t)
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
	got := readAll(t, srv.http(), "q")
	if len(got) != 1 || string(got[0]) != `"kept"` {
		t.Fatalf("channel holds %s, want only \"kept\"", got)
	}
}

// A message that arrives twice (by cursor) is delivered once, and so is a
// gap the server reports again after a resume. The server does not send
// duplicates on one connection, so they are injected where the reader
// hands frames to the client.
func TestDedupByCursor(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	c := dial(t, srv.ws(), Config{})
	rec := newRecorder()
	if _, err := c.Subscribe(ctx, "dup", SubscribeOptions{After: "0", Handler: rec.handle}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Publish(ctx, "dup", "x")
	if err != nil {
		t.Fatal(err)
	}
	first := rec.waitN(t, 10*time.Second, EventMessage, 1)[0]
	c.mu.Lock()
	l := c.link
	c.mu.Unlock()
	c.message(l, wire.Message{Type: wire.TypeMessage, Channel: "dup", Cursor: res.Cursor, Data: first.Data})
	g := wire.Gap{Type: wire.TypeGap, Channel: "dup", After: "a", Earliest: "b"}
	c.gap(l, g)
	c.gap(l, g)
	if _, err := c.Publish(ctx, "dup", "y"); err != nil {
		t.Fatal(err)
	}
	rec.waitN(t, 10*time.Second, EventMessage, 2)
	evs := rec.snapshot()
	if len(evs) != 3 || evs[0].Kind != EventMessage || evs[1].Kind != EventGap || evs[2].Kind != EventMessage || string(evs[2].Data) != `"y"` {
		t.Fatalf("events %+v: want x, one gap, y", evs)
	}
	if d := c.Stats().Duplicates; d != 1 {
		t.Fatalf("Stats().Duplicates = %d, want 1", d)
	}
}

// A handler too slow for the stream: the client stops reading (its
// delivery queue is full), the server ends the connection as a slow
// consumer, and once the handler catches up the subscription resumes:
// every message once, in order.
func TestSlowHandlerResumes(t *testing.T) {
	srv := startServer(t, "--max-lag", "500ms", "--queue-bytes", "65536")
	ctx := context.Background()
	const n = 1000
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	handler := func(ev Event) {
		<-release
		mu.Lock()
		got = append(got, string(ev.Data))
		mu.Unlock()
	}
	sub := dial(t, srv.ws(), Config{DeliveryQueue: 8, BackoffMax: 200 * time.Millisecond})
	if _, err := sub.Subscribe(ctx, "slow", SubscribeOptions{After: "0", Handler: handler}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, srv.ws(), Config{})
	pad := strings.Repeat("x", 8000) // 8 MB in all: more than the socket buffers hold
	var wg sync.WaitGroup
	for g := range 4 { // 4 in flight: fast enough to fill the queues
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				if _, err := pub.Publish(ctx, "slow", map[string]any{"n": i, "pad": pad}, WithIdempotencyKey("slow-"+strconv.Itoa(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	srv.waitLogAttr(t, 30*time.Second, "connection ended", "reason", "slow-consumer")
	close(release)
	waitFor(t, 60*time.Second, "all delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= n
	})
	stored := readAll(t, srv.http(), "slow")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n || len(stored) != n {
		t.Fatalf("%d delivered, %d stored; want %d", len(got), len(stored), n)
	}
	for i := range got {
		if got[i] != string(stored[i]) {
			t.Fatalf("message %d delivered %.40s, stored %.40s", i, got[i], stored[i])
		}
	}
	if r := sub.Stats().Reconnects; r < 1 {
		t.Fatalf("%d reconnects: the server did not cut the slow client", r)
	}
}

// A server that comes back without its data refuses the resume cursor:
// the subscription ends with an EventError carrying the server's code,
// instead of silently starting over.
func TestResumeRefusedEndsSubscription(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	c := dial(t, srv.ws(), Config{BackoffMax: 200 * time.Millisecond})
	rec := newRecorder()
	if _, err := c.Subscribe(ctx, "lost", SubscribeOptions{After: "0", Handler: rec.handle}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Publish(ctx, "lost", i); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitN(t, 10*time.Second, EventMessage, 3)
	srv.kill()
	srv.dir = t.TempDir() // the data is gone
	srv.start(t)
	ev := rec.waitN(t, 20*time.Second, EventError, 1)[0]
	ef, ok := errors.AsType[*wire.ErrorFrame](ev.Err)
	if !ok || ef.Code != wire.CodeCursorAhead && ef.Code != wire.CodeBadCursor {
		t.Fatalf("EventError %v, want cursor_ahead or bad_cursor", ev.Err)
	}
	if _, err := c.Publish(ctx, "lost", "after"); err != nil {
		t.Fatal(err)
	}
	if got := rec.snapshot(); len(got) != 4 {
		t.Fatalf("events %+v: want 3 messages and the error, nothing after", got)
	}
	// Subscribing again from the start works.
	again := newRecorder()
	c.Handle("lost", nil)
	if _, err := c.Subscribe(ctx, "lost", SubscribeOptions{After: "0", Handler: again.handle}); err != nil {
		t.Fatal(err)
	}
	if got := again.waitN(t, 10*time.Second, EventMessage, 1); string(got[0].Data) != `"after"` {
		t.Fatalf("after resubscribing: %s, want \"after\"", got[0].Data)
	}
}
