//go:build linux

package conn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// A client that half-closes after its GET still gets the full response,
// and its handler is never cancelled.
func TestHalfCloseDeliversResponse(t *testing.T) {
	calls := make(chan *call, 1)
	ts := startServer(t, waitHandler(calls), WatchConfig{}, KeepAlive{})
	c := dialGET(t, ts.addr, "/poll", "HTTP/1.1")
	c.CloseWrite()
	call := nextCall(t, calls)
	waitHalfClosed(t, call)

	if err := call.ctx.Err(); err != nil {
		t.Fatalf("handler context cancelled for a half-close: %v", context.Cause(call.ctx))
	}
	call.release <- "event-1"
	res, body, interim, err := readResponse(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || body != "event-1" || res.Header.Get("X-Handler") != "final-only" {
		t.Fatalf("got %d %q X-Handler=%q, want 200 %q final-only", res.StatusCode, body, res.Header.Get("X-Handler"), "event-1")
	}
	if len(interim) != 1 {
		t.Fatalf("got %d interim responses, want 1 probe", len(interim))
	}
	isInterim102(t, interim[0])
	e := ts.nextEnd(t)
	if e.Reason != ReasonHalfClosed || !e.HalfClosed || e.Err != nil {
		t.Fatalf("End = %+v, want half-closed", e)
	}
	if e.Noticed <= 0 || e.Noticed > 200*time.Millisecond {
		t.Fatalf("End.Noticed = %v, want (0, 200ms]", e.Noticed)
	}
	t.Logf("half-close classified in %v", e.Noticed)
}

// A client that leaves mid-wait cancels the handler within a round trip,
// with the right cause.
func TestClientLeaves(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leave  func(*net.TCPConn) error
		want   error
		reason Reason
	}{
		{"close", (*net.TCPConn).Close, ErrClosed, ReasonClosed},
		{"reset", func(c *net.TCPConn) error { c.SetLinger(0); return c.Close() }, ErrReset, ReasonReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := make(chan *call, 1)
			ts := startServer(t, waitHandler(calls), WatchConfig{}, KeepAlive{})
			c := dialGET(t, ts.addr, "/poll", "HTTP/1.1")
			call := nextCall(t, calls)
			left := time.Now()
			if err := tc.leave(c); err != nil {
				t.Fatal(err)
			}
			latency := waitGone(t, call, 5*time.Second).Sub(left)
			checkCause(t, call.ctx, tc.want)
			e := ts.nextEnd(t)
			if e.Reason != tc.reason || e.HalfClosed {
				t.Fatalf("End = %+v, want %s", e, tc.reason)
			}
			if latency > 200*time.Millisecond || e.Noticed > 200*time.Millisecond {
				t.Fatalf("noticed after %v (classified in %v), want < 200ms", latency, e.Noticed)
			}
			t.Logf("%s: handler cancelled %v after the client left, classification took %v", tc.name, latency, e.Noticed)
		})
	}
}

// A half-closed client that later resets, or fully closes, is noticed.
func TestHalfClosedThenLeaves(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(*net.TCPConn) error
		want  error
	}{
		{"reset", func(c *net.TCPConn) error { c.SetLinger(0); return c.Close() }, ErrReset},
		// The first probe was read, so close sends no RST: the peer sits
		// in FIN_WAIT2 and only the next probe (after 1 s) reveals it.
		{"close", (*net.TCPConn).Close, ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := make(chan *call, 1)
			ts := startServer(t, waitHandler(calls), WatchConfig{}, KeepAlive{})
			c := dialGET(t, ts.addr, "/poll", "HTTP/1.1")
			c.CloseWrite()
			call := nextCall(t, calls)
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			isInterim102(t, res)
			waitHalfClosed(t, call)
			left := time.Now()
			tc.leave(c)
			latency := waitGone(t, call, 5*time.Second).Sub(left)
			checkCause(t, call.ctx, tc.want)
			e := ts.nextEnd(t)
			if !e.HalfClosed || !errors.Is(e.Err, tc.want) {
				t.Fatalf("End = %+v, want HalfClosed and %v", e, tc.want)
			}
			t.Logf("half-closed then %s: noticed after %v", tc.name, latency)
		})
	}
}

func TestShutdown(t *testing.T) {
	calls := make(chan *call, 1)
	shut, stop := context.WithCancel(context.Background())
	defer stop()
	ts := startServer(t, waitHandler(calls), WatchConfig{Shutdown: shut}, KeepAlive{})
	dialGET(t, ts.addr, "/poll", "HTTP/1.1")
	call := nextCall(t, calls)
	stop()
	waitGone(t, call, 5*time.Second)
	if got := context.Cause(call.ctx); got != ErrShutdown {
		t.Fatalf("context.Cause = %v, want ErrShutdown", got)
	}
	if e := ts.nextEnd(t); e.Reason != ReasonShutdown {
		t.Fatalf("End = %+v, want shutdown", e)
	}
}

// A cancellation from the server side (BaseContext) while the peer is
// connected is passed on with its cause.
func TestServerSideCancel(t *testing.T) {
	base, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	calls := make(chan *call, 1)
	ln, err := Listen(context.Background(), "127.0.0.1:0", KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan struct{})
	srv := &http.Server{
		Handler:     Watch(waitHandler(calls), WatchConfig{}),
		ConnContext: ConnContext,
		BaseContext: func(net.Listener) context.Context { return base },
	}
	go func() { defer close(srvDone); srv.Serve(ln) }()
	defer func() { srv.Close(); <-srvDone }()
	dialGET(t, ln.Addr().String(), "/poll", "HTTP/1.1")
	call := nextCall(t, calls)
	errDraining := errors.New("draining")
	cancel(errDraining)
	waitGone(t, call, 5*time.Second)
	if got := context.Cause(call.ctx); got != errDraining || ReasonOf(got) != ReasonCanceled {
		t.Fatalf("context.Cause = %v (%s), want %v (canceled)", got, ReasonOf(got), errDraining)
	}
}

// HTTP/1.0 clients must not get 1xx responses (RFC 9110 §15.2); Watch
// then cannot probe and lets the request run.
func TestHTTP10GetsNoInterim(t *testing.T) {
	calls := make(chan *call, 1)
	ts := startServer(t, waitHandler(calls), WatchConfig{}, KeepAlive{})
	c := dialGET(t, ts.addr, "/poll", "HTTP/1.0")
	c.CloseWrite()
	call := nextCall(t, calls)
	orig := call.w.(*responseWriter).wt.orig
	waitFor(t, 5*time.Second, "net/http's cancellation", func() bool { return orig.Err() != nil })
	call.release <- "answer"
	res, body, interim, err := readResponse(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	if len(interim) != 0 || res.StatusCode != 200 || body != "answer" {
		t.Fatalf("got %d interim, %d %q; want none, 200 answer", len(interim), res.StatusCode, body)
	}
	if e := ts.nextEnd(t); e.Err != nil {
		t.Fatalf("End = %+v, want not cancelled", e)
	}
}

// Aborted requests leave no goroutine behind, ours or net/http's.
func TestManyAbortsLeaveNoGoroutines(t *testing.T) {
	const n = 1000
	ready := make(map[string]chan struct{}, n)
	for i := range n {
		ready[fmt.Sprint(i)] = make(chan struct{})
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(ready[r.URL.Query().Get("id")])
		<-r.Context().Done()
	})
	ts := startServer(t, h, WatchConfig{}, KeepAlive{})
	before := goleak.IgnoreCurrent()

	ids := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range ids {
				abortOne(t, ts.addr, i, ready[fmt.Sprint(i)])
			}
		})
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()

	got := map[Reason]int{}
	for range n {
		got[ts.nextEnd(t).Reason]++
	}
	if got[ReasonClosed] != n/2 || got[ReasonReset] != n/2 {
		t.Errorf("reasons = %v, want %d closed and %d reset", got, n/2, n/2)
	}
	goleak.VerifyNone(t, before)
}

// abortOne sends a GET, waits for its handler, then closes (even i) or
// resets (odd i) the connection.
func abortOne(t *testing.T, addr string, i int, ready chan struct{}) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /abort?id=%d HTTP/1.1\r\nHost: test\r\n\r\n", i)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Errorf("request %d: handler not called", i)
		return
	}
	if i%2 == 1 {
		c.(*net.TCPConn).SetLinger(0)
	}
}

// HTTP/2 and connections Watch cannot inspect degrade to net/http's
// cancellation, reported as ReasonCanceled.
func TestDegrades(t *testing.T) {
	t.Run("h2c", func(t *testing.T) {
		calls := make(chan *call, 1)
		ts := startServerH2C(t, waitHandler(calls))
		ctx, cancel := context.WithCancel(context.Background())
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ts.addr+"/poll", nil)
		errc := make(chan error, 1)
		go func() {
			res, err := tr.RoundTrip(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		call := nextCall(t, calls)
		cancel()
		<-errc
		waitGone(t, call, 5*time.Second)
		checkDegraded(t, call.ctx, ts.nextEnd(t))
	})
	t.Run("no-conncontext", func(t *testing.T) {
		calls := make(chan *call, 1)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ts := serve(t, &noTCPListener{ln}, waitHandler(calls), WatchConfig{})
		c := dialGET(t, ts.addr, "/poll", "HTTP/1.1")
		call := nextCall(t, calls)
		c.Close()
		waitGone(t, call, 5*time.Second)
		checkDegraded(t, call.ctx, ts.nextEnd(t))
	})
}

func checkDegraded(t *testing.T, ctx context.Context, e End) {
	t.Helper()
	cause := context.Cause(ctx)
	g, ok := errors.AsType[*GoneError](cause)
	if !ok || g.Reason != ReasonCanceled || e.Reason != ReasonCanceled {
		t.Fatalf("cause = %v, End = %+v; want a GoneError with ReasonCanceled", cause, e)
	}
}

func startServerH2C(t *testing.T, h http.Handler) *testServer {
	ln, err := Listen(context.Background(), "127.0.0.1:0", KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), ends: make(chan endRec, 10)}
	srv := &http.Server{
		Handler: Watch(h, WatchConfig{OnEnd: func(r *http.Request, e End) {
			ts.ends <- endRec{r.URL.Path, e}
		}}),
		ConnContext: ConnContext,
		Protocols:   new(http.Protocols),
	}
	srv.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ts
}

// noTCPListener hides *net.TCPConn, as a wrapping listener would.
type noTCPListener struct{ net.Listener }

func (l *noTCPListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

func TestReasonOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Reason
	}{
		{nil, ""},
		{gone(ReasonReset, nil), ReasonReset},
		{fmt.Errorf("wrapped: %w", gone(ReasonTimeout, nil)), ReasonTimeout},
		{ErrShutdown, ReasonShutdown},
		{ErrClosed, ReasonClosed},
		{context.Canceled, ReasonCanceled},
		{io.EOF, ReasonCanceled},
	} {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	g := gone(ReasonReset, &net.OpError{Op: "read", Err: errors.New("x")})
	if !errors.Is(g, ErrReset) || errors.Is(g, ErrClosed) || !strings.Contains(g.Error(), "reset") {
		t.Errorf("GoneError %v does not match ErrReset only", g)
	}
}

// A POST whose body the handler read to EOF is watched like a GET.
func TestHalfCloseAfterPOSTBody(t *testing.T) {
	calls := make(chan *call, 1)
	readBody := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, err := io.ReadAll(r.Body); err != nil || string(b) != "hello" {
			panic(fmt.Sprintf("body %q, %v", b, err))
		}
		waitHandler(calls).ServeHTTP(w, r)
	})
	ts := startServer(t, readBody, WatchConfig{}, KeepAlive{})
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /submit HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
	c.(*net.TCPConn).CloseWrite()
	call := nextCall(t, calls)
	waitHalfClosed(t, call)
	call.release <- "accepted"
	res, body, _, err := readResponse(bufio.NewReader(c))
	if err != nil || res.StatusCode != 200 || body != "accepted" {
		t.Fatalf("got %v %q %v, want 200 accepted", res, body, err)
	}
	if e := ts.nextEnd(t); e.Reason != ReasonHalfClosed {
		t.Fatalf("End = %+v, want half-closed", e)
	}
}

// While nothing happens Watch costs no goroutine: a waiting request has
// only net/http's two (the connection's and its background read).
func TestNoGoroutineWhileWaiting(t *testing.T) {
	const n = 50
	calls := make(chan *call, n)
	shut, stop := context.WithCancel(context.Background())
	defer stop()
	ts := startServer(t, waitHandler(calls), WatchConfig{Shutdown: shut}, KeepAlive{})
	before := runtime.NumGoroutine()
	for range n {
		dialGET(t, ts.addr, "/poll", "HTTP/1.1")
		nextCall(t, calls)
	}
	if got := runtime.NumGoroutine() - before; got > 2*n+2 {
		t.Fatalf("%d waiting requests added %d goroutines, want <= %d (net/http's)", n, got, 2*n+2)
	}
	stop()
	for range n {
		ts.nextEnd(t)
	}
}
