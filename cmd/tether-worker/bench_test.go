package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of jobs with real processes (docs/benchmarks.md, "## Jobs"
// gives the commands and the figures). Each reports its own metrics; ns/op
// is incidental.

// percentiles reports p50, p99 and max of ds (sorted here) in ms.
func percentiles(b *testing.B, prefix string, ds []time.Duration) {
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(at(0.50)), prefix+"p50-ms")
	b.ReportMetric(ms(at(0.99)), prefix+"p99-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), prefix+"max-ms")
	b.Logf("%s n=%d p50=%v p99=%v max=%v", prefix, len(ds), at(0.50), at(0.99), ds[len(ds)-1])
}

// BenchmarkCancelToContext: b.N running jobs are cancelled one after the
// other (POST /v1/jobs/{id}/cancel); each latency runs from just before
// the POST to the handler's return on its ctx.Done (the end time the
// worker's effects log records). Then the same worker process (same pid)
// must run the next job.
//
//	go test -run '^$' -bench CancelToContext -benchtime 1000x ./cmd/tether-worker/
func BenchmarkCancelToContext(b *testing.B) {
	dir := b.TempDir()
	srv := startServer(b, filepath.Join(dir, "data"))
	effects := filepath.Join(dir, "effects.log")
	w := startWorker(b, srv, "w", "--types", "sleep,noop", "--concurrency", "1", "--effects-log", effects)
	sent := map[string]time.Time{}
	b.ResetTimer()
	for range b.N {
		id := srv.create(b, map[string]any{"type": "sleep", "payload": map[string]int{"ms": 60000}})
		srv.waitJob(b, id, 10*time.Second, "running", func(j jobView) bool { return j.State == "running" })
		sent[id] = time.Now()
		srv.cancel(b, id)
		srv.waitJob(b, id, 10*time.Second, "final", jobView.final)
	}
	b.StopTimer()
	next := srv.create(b, map[string]any{"type": "noop"})
	if j := srv.waitJob(b, next, 10*time.Second, "final", jobView.final); j.State != "succeeded" {
		b.Fatalf("next job %+v", j)
	}
	var lat []time.Duration
	for _, e := range readEffects(b, effects) {
		if e.pid != w.pid() {
			b.Fatalf("a handler ran in pid %d, want %d", e.pid, w.pid())
		}
		if t0, ok := sent[e.job]; ok {
			lat = append(lat, time.Duration(e.end-t0.UnixNano()))
		}
	}
	if len(lat) != len(sent) || !w.alive() {
		b.Fatalf("%d handler ends for %d cancels; worker alive %v", len(lat), len(sent), w.alive())
	}
	percentiles(b, "cancel-", lat)
}

// BenchmarkThroughput: b.N no-op jobs are created (not timed), then 1, 4
// or 16 worker processes (4 jobs at once each) start; the time runs from
// the first handler's start to the last job recorded final.
//
//	go test -run '^$' -bench Throughput -benchtime 5000x ./cmd/tether-worker/
//
// TETHER_BENCH_SERVE adds flags to tether serve, space-separated: for
// example "--nats <URLs> --nats-stream <fresh name>" for the JetStream
// engine.
func BenchmarkThroughput(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			switch {
			case b.N == 1:
				return // the framework's probe run; -benchtime Nx sets the jobs
			case b.N > 200000:
				b.Fatalf("b.N = %d jobs: run with -benchtime Nx (e.g. 5000x)", b.N)
			}
			dir := b.TempDir()
			srv := startServer(b, filepath.Join(dir, "data"), strings.Fields(os.Getenv("TETHER_BENCH_SERVE"))...)
			effects := filepath.Join(dir, "effects.log")
			ids := make([]string, b.N)
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					for i := g; i < b.N; i += 16 {
						ids[i] = srv.create(b, map[string]any{"type": "noop", "on_disconnect": "detach"})
					}
				})
			}
			wg.Wait()
			bin, _ := buildBinaries()
			b.ResetTimer()
			for i := range workers {
				startProc(b, bin.worker, "--url", srv.ws, "--id", "w"+strconv.Itoa(i), "--log-format", "json",
					"--types", "noop", "--concurrency", "4", "--effects-log", effects)
			}
			// Every handler writes its line before it reports: once there
			// are b.N lines, wait for the last jobs to be recorded.
			deadline := time.Now().Add(10 * time.Minute)
			for lineCount(effects) < b.N {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d jobs ran within 10 minutes", lineCount(effects), b.N)
				}
				time.Sleep(5 * time.Millisecond) // polling against the deadline
			}
			var last time.Time
			for i := len(ids) - 1; i >= 0; i-- {
				j := srv.waitJob(b, ids[i], time.Minute, "final", jobView.final)
				if j.State != "succeeded" {
					b.Fatalf("job %+v", j)
				}
				if j.Ended.After(last) {
					last = j.Ended
				}
			}
			b.StopTimer()
			first := int64(1<<63 - 1)
			for _, e := range readEffects(b, effects) {
				first = min(first, e.start)
			}
			secs := last.Sub(time.Unix(0, first)).Seconds()
			b.ReportMetric(float64(b.N)/secs, "jobs/s")
			b.Logf("workers=%d: %d jobs in %.3fs: %.0f jobs/s", workers, b.N, secs, float64(b.N)/secs)
		})
	}
}

// lineCount is the number of complete lines in path (0 if it is missing).
func lineCount(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte("\n"))
}

// BenchmarkFailover: a worker running a long job dies; the time runs from
// the signal to the job's next attempt being claimed by another worker
// (its "started", written by the server). reset: SIGKILL, the connection
// reset is noticed at once. silent: SIGSTOP, the worker says nothing and
// its lease (3 x --job-heartbeat 1s) must expire.
//
//	go test -run '^$' -bench Failover -benchtime 20x ./cmd/tether-worker/
func BenchmarkFailover(b *testing.B) {
	for _, mode := range []string{"reset", "silent"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			srv := startServer(b, filepath.Join(dir, "data"))
			var lat []time.Duration
			b.ResetTimer()
			for i := range b.N {
				a := startWorker(b, srv, fmt.Sprintf("a%d", i), "--types", "sleep")
				id := srv.create(b, map[string]any{"type": "sleep", "payload": map[string]int{"ms": 600000}, "on_disconnect": "detach"})
				srv.waitJob(b, id, 10*time.Second, "running on a", func(j jobView) bool { return j.State == "running" })
				bw := startWorker(b, srv, fmt.Sprintf("b%d", i), "--types", "sleep")
				t0 := time.Now()
				if mode == "reset" {
					a.signal(syscall.SIGKILL)
				} else {
					a.signal(syscall.SIGSTOP)
				}
				want := fmt.Sprintf("b%d", i)
				j := srv.waitJob(b, id, 30*time.Second, "running on b", func(j jobView) bool { return j.State == "running" && j.Worker == want })
				lat = append(lat, j.Started.Sub(t0))
				srv.cancel(b, id)
				srv.waitJob(b, id, 10*time.Second, "final", jobView.final)
				a.kill()
				bw.kill()
			}
			b.StopTimer()
			percentiles(b, mode+"-", lat)
		})
	}
}
