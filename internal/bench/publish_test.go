package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-run/tether"
)

// trivialServer is an HTTP server on loopback whose every answer is an
// immediate 201 with a small JSON body, as tether's to a publish: what the
// publish scenario's client reaches when the server costs next to nothing.
func trivialServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		io.WriteString(w, `{"channel":"publish","id":"0000000001-0"}`+"\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// BenchmarkPublishClient: acknowledged publishes per second the publish
// scenario's client gets from a server that does nothing, with 64
// publishers on their own connections (GOMAXPROCS x 32 goroutines): the
// ceiling the scenario can show on this machine, server and client on
// the same cores.
//
//	go test -run '^$' -bench PublishClient ./internal/bench/
func BenchmarkPublishClient(b *testing.B) {
	addr := trivialServer(b)
	ctx := context.Background()
	b.Run("net/http", func(b *testing.B) {
		var dials atomic.Int64
		c := httpClient(&dialer{onConn: func(net.Conn) { dials.Add(1) }}, 64)
		defer c.CloseIdleConnections()
		defer func() { b.ReportMetric(float64(dials.Load()), "dials") }()
		runPublishers(b, func() func() error {
			return func() error { return publish(ctx, c, Tether, addr, "publish", payload(1, time.Now())) }
		})
	})
	b.Run("raw", func(b *testing.B) {
		runPublishers(b, func() func() error {
			pp := newRawPoster(&dialer{}, addr)
			return func() error { return rawPublish(ctx, pp, Tether, "publish", payload(1, time.Now())) }
		})
	})
}

// BenchmarkPublishPath: acknowledged publishes per second and CPU per
// publish (client and server, one process) of 64 rawPoster publishers
// against a server that does nothing (trivial) and against an in-process
// tether on Pebble in a temp dir, every publish fsynced (tether): the
// ratio is what tether's HTTP publish path costs over HTTP itself.
//
//	go test -run '^$' -bench PublishPath -benchtime 3s ./internal/bench/
func BenchmarkPublishPath(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, addr string) {
		runPublishers(b, func() func() error {
			pp := newRawPoster(&dialer{}, addr)
			return func() error { return rawPublish(ctx, pp, Tether, "publish", payload(1, time.Now())) }
		})
	}
	b.Run("trivial", func(b *testing.B) { run(b, trivialServer(b)) })
	b.Run("tether", func(b *testing.B) {
		srv, err := tether.New(tether.Config{Addr: "127.0.0.1:0", DataDir: b.TempDir()}, tether.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer srv.Shutdown(ctx)
		run(b, srv.Addr().String())
	})
}

// runPublishers runs publishers from 64 goroutines b.N times in all, each
// goroutine with its own from newPub.
func runPublishers(b *testing.B, newPub func() func() error) {
	b.SetParallelism(32)
	b.ReportAllocs()
	cpu0 := selfCPU()
	b.RunParallel(func(pb *testing.PB) {
		pub := newPub()
		for pb.Next() {
			if err := pub(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N), "cpu-ns/req")
}

// TestRawPoster: answers framed by Content-Length, by chunks and by the
// connection's end are read whole; a kept-alive connection is reused and
// one the server closes is redialed.
func TestRawPoster(t *testing.T) {
	ctx := context.Background()
	t.Run("net/http server", func(t *testing.T) {
		var dials atomic.Int64
		pp := newRawPoster(&dialer{onConn: func(net.Conn) { dials.Add(1) }}, trivialServer(t))
		defer pp.close()
		for i := range 3 {
			status, body, err := pp.post(ctx, "/v1/channels/c/messages", "", []byte(`"x"`))
			if err != nil || status != 201 || !bytes.Contains(body, []byte(`"id":"0000000001-0"`)) {
				t.Fatalf("post %d: %d %q %v", i, status, body, err)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("%d connections for 3 posts; want 1", n)
		}
	})
	for _, tc := range []struct{ name, answer, want string }{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(`{"a":`) + chunk(`1}`) + "0\r\n\r\n", `{"a":1}`},
		{"until close", "HTTP/1.0 202 Accepted\r\n\r\nqueued", "queued"},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dials atomic.Int64
			addr := serveRaw(t, func(w io.Writer) { io.WriteString(w, tc.answer) })
			pp := newRawPoster(&dialer{onConn: func(net.Conn) { dials.Add(1) }}, addr)
			defer pp.close()
			for i := range 2 {
				status, body, err := pp.post(ctx, "/pub/c", "", []byte("x"))
				if err != nil || status/100 != 2 || string(body) != tc.want {
					t.Fatalf("post %d: %d %q %v; want 2xx %q", i, status, body, err, tc.want)
				}
			}
			// serveRaw closes the connection after each answer: a
			// kept-alive one (chunked) is found closed and redialed.
			if n := dials.Load(); n != 2 {
				t.Errorf("%d connections; want 2", n)
			}
		})
	}
	t.Run("error status", func(t *testing.T) {
		addr := serveRaw(t, func(w io.Writer) {
			io.WriteString(w, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
		})
		pp := newRawPoster(&dialer{}, addr)
		defer pp.close()
		if err := rawPublish(ctx, pp, Nchan, "c", []byte("x")); err == nil || !strings.Contains(err.Error(), "503 busy") {
			t.Fatalf("err = %v; want the 503", err)
		}
	})
}
