//go:build linux

package conn

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Streaming with a filler: the filler probes after the response started,
// concurrently with the handler's own writes (run with -race).
func TestStreamingFiller(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			calls := make(chan *call, 1)
			ts := startServer(t, sseHandler(calls, busy), WatchConfig{}, KeepAlive{})
			c := dialGET(t, ts.addr, "/events", "HTTP/1.1")
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("got %v, %v; want 200", res, err)
			}
			go io.Copy(io.Discard, res.Body) // keep reading like a browser
			c.CloseWrite()
			call := nextCall(t, calls)
			waitHalfClosed(t, call)
			c.SetLinger(0)
			c.Close()
			waitGone(t, call, 5*time.Second)
			// With data in flight an unprovoked RST cannot be told from one
			// our data provoked, so a busy stream may report "closed".
			want := map[Reason]bool{ReasonReset: true, ReasonClosed: busy}
			if e := ts.nextEnd(t); !e.HalfClosed || !want[e.Reason] || ReasonOf(context.Cause(call.ctx)) != e.Reason {
				t.Fatalf("End = %+v, cause %v; want half-closed then reset", e, context.Cause(call.ctx))
			}
		})
	}
}

// sseHandler starts an event stream; busy makes it write as fast as it can
// so that probes contend with it.
func sseHandler(calls chan<- *call, busy bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		SetFiller(w, []byte(":\n"))
		rc := http.NewResponseController(w)
		w.WriteHeader(200)
		if err := rc.Flush(); err != nil {
			panic(err)
		}
		c := &call{ctx: r.Context(), w: w, goneAt: make(chan time.Time, 1)}
		calls <- c
		for i := 0; ; i++ {
			if !busy {
				<-r.Context().Done()
			}
			select {
			case <-r.Context().Done():
				c.goneAt <- time.Now()
				return
			default:
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			rc.Flush()
		}
	})
}

// The wrapper keeps http.ResponseController, trailers and Hijack working.
func TestResponseWriterFeatures(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/controller":
			rc := http.NewResponseController(w)
			if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			io.WriteString(w, "flushed")
			if err := rc.Flush(); err != nil {
				panic(err)
			}
		case "/hijack":
			c, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nraw-ok")
			buf.Flush()
			c.Close()
		}
	})
	ts := startServer(t, h, WatchConfig{}, KeepAlive{})
	cl := &http.Client{Transport: &http.Transport{}}
	defer cl.CloseIdleConnections()
	for path, want := range map[string]string{"/trailer": "body", "/controller": "flushed", "/hijack": "raw-ok"} {
		res, err := cl.Get("http://" + ts.addr + path)
		if err != nil {
			t.Fatal(path, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != want || res.StatusCode != 200 {
			t.Errorf("%s: got %d %q, want 200 %q", path, res.StatusCode, b, want)
		}
		if path == "/trailer" && res.Trailer.Get("X-Sum") != "42" {
			t.Errorf("trailer X-Sum = %q, want 42", res.Trailer.Get("X-Sum"))
		}
		ts.nextEnd(t)
	}
}

// Go's http.Client reads through Watch's interim probes; the number sent
// per request stays within max1xx even when the peer stays half-closed.
func TestInterimBudget(t *testing.T) {
	t.Parallel() // takes 7 s: probes at 0, 1, 3 and 7 s
	calls := make(chan *call, 1)
	ts := startServer(t, waitHandler(calls), WatchConfig{}, KeepAlive{})
	c := dialGET(t, ts.addr, "/poll", "HTTP/1.1")
	c.CloseWrite()
	call := nextCall(t, calls)
	br := bufio.NewReader(c)
	for i := range max1xx {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("interim %d: %v", i, err)
		}
		isInterim102(t, res)
	}
	call.release <- "late"
	res, body, interim, err := readResponse(br)
	if err != nil || len(interim) != 0 || body != "late" || res.StatusCode != 200 {
		t.Fatalf("after %d probes got %d more interim, %v %q %v", max1xx, len(interim), res, body, err)
	}
	if e := ts.nextEnd(t); e.Reason != ReasonHalfClosed {
		t.Fatalf("End = %+v, want half-closed", e)
	}
}

// After the response started, without a filler, Watch must not send a 1xx
// (it would corrupt the body). A half-closed client still gets an intact
// body; a fully closed one is caught by the handler's next write.
func TestStartedResponseWithoutFiller(t *testing.T) {
	t.Run("half-close", func(t *testing.T) {
		calls := make(chan *call, 1)
		ts := startServer(t, startedHandler(calls), WatchConfig{}, KeepAlive{})
		c := dialGET(t, ts.addr, "/stream", "HTTP/1.1")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("got %v, %v; want 200", res, err)
		}
		c.CloseWrite()
		call := nextCall(t, calls)
		orig := call.w.(*responseWriter).wt.orig
		waitFor(t, 5*time.Second, "net/http's cancellation", func() bool { return orig.Err() != nil })
		call.release <- "tail"
		call.release <- ""
		body, err := io.ReadAll(res.Body)
		if err != nil || string(body) != "tail" {
			t.Fatalf("body = %q, %v; want %q", body, err, "tail")
		}
		if e := ts.nextEnd(t); e.Err != nil {
			t.Fatalf("End = %+v, want not cancelled", e)
		}
	})
	t.Run("close", func(t *testing.T) {
		calls := make(chan *call, 1)
		ts := startServer(t, startedHandler(calls), WatchConfig{}, KeepAlive{})
		c := dialGET(t, ts.addr, "/stream", "HTTP/1.1")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
		call := nextCall(t, calls)
		c.Close()
		orig := call.w.(*responseWriter).wt.orig
		waitFor(t, 5*time.Second, "net/http's cancellation", func() bool { return orig.Err() != nil })
		wrote := time.Now()
		call.release <- "into the void"
		latency := waitGone(t, call, 5*time.Second).Sub(wrote)
		checkCause(t, call.ctx, ErrClosed)
		if latency > 200*time.Millisecond {
			t.Fatalf("noticed %v after the handler's write, want < 200ms", latency)
		}
		ts.nextEnd(t)
	})
}

// startedHandler commits a streaming response at once, then writes what
// the test releases; an empty release ends it.
func startedHandler(calls chan<- *call) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		rc := http.NewResponseController(w)
		rc.Flush()
		c := &call{ctx: r.Context(), w: w, release: make(chan string, 2), goneAt: make(chan time.Time, 1)}
		calls <- c
		for {
			select {
			case s := <-c.release:
				if s == "" {
					return
				}
				io.WriteString(w, s)
				rc.Flush()
			case <-r.Context().Done():
				c.goneAt <- time.Now()
				return
			}
		}
	})
}
