package bench

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/tether-run/tether"
)

// TestProfile writes profiles of an in-process tether server for the
// figures where it falls short, since the server binary exposes no pprof:
//
//	TETHER_BENCH_PROFILE=/tmp/prof go test -run TestProfile -v ./internal/bench
//	go tool pprof -top -sample_index=inuse_space -focus='net/http.\(\*conn\).serve' /tmp/prof/idle-websocket.heap
//	go tool pprof -top /tmp/prof/publish-64.cpu
//
// idle-websocket.heap is the heap with TETHER_BENCH_PROFILE_CONNS (default
// 5000) idle WebSocket subscribers; the harness's clients live in the same
// process, so focus on the server's stacks (net/http's conn.serve).
// publish-64.cpu is 3 s of 64 HTTP publishers; fanout-1000.cpu is 200
// messages flat out to 1000 WebSocket subscribers. Skipped unless
// TETHER_BENCH_PROFILE is set.
func TestProfile(t *testing.T) {
	dir := os.Getenv("TETHER_BENCH_PROFILE")
	if dir == "" {
		t.Skip("set TETHER_BENCH_PROFILE=<dir> to profile an in-process server")
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("TETHER_BENCH_PROFILE_CONNS")); err == nil && v > 0 {
		n = v
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := tether.New(tether.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir()}, tether.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	addr := srv.Addr().String()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	d := &dialer{spread: true}
	subs := make([]*wsSub, 0, n)
	defer func() {
		for _, s := range subs {
			s.closeNow()
		}
	}()
	for range n {
		s, err := dialWS(ctx, Tether, addr, "idle", d)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d idle WebSocket connections, server and clients together: heap in use +%d B/conn, stacks +%d B/conn, goroutines +%.1f/conn",
		n, int64(after.HeapInuse-before.HeapInuse)/int64(n), int64(after.StackInuse-before.StackInuse)/int64(n),
		float64(runtime.NumGoroutine()-g0)/float64(n))
	writeProfile(t, "heap", filepath.Join(dir, "idle-websocket.heap"))
	writeProfile(t, "goroutine", filepath.Join(dir, "idle-websocket.goroutine"))

	f, err := os.Create(filepath.Join(dir, "publish-64.cpu"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: Config{Stderr: testWriter{t}}}
	in := &instance{sys: Tether, addr: addr, admin: &http.Client{}}
	m, err := r.publish(ctx, in, 64, 3*time.Second)
	pprof.StopCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("64 publishers in-process: %.0f publishes/s, p99 %.2f ms", m.m["appends_per_s"], m.m["p99_ms"])

	for _, s := range subs {
		s.closeNow()
	}
	subs = nil
	f2, err := os.Create(filepath.Join(dir, "fanout-1000.cpu"))
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if err := pprof.StartCPUProfile(f2); err != nil {
		t.Fatal(err)
	}
	m, err = r.fanout(ctx, in, "websocket", 1000, 200, 1, 0)
	pprof.StopCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fan-out in-process, 1000 subscribers, 200 messages flat out: %.0f delivered/s, p99 %.1f ms", m.m["delivered_per_s"], m.m["p99_ms"])
}

func writeProfile(t *testing.T, name, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}
