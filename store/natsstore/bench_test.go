package natsstore

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/storetest"
)

// The benchmarks mirror store/pebblestore's, so that the two engines'
// figures sit side by side: the same message size, publishers and pages.
// The NATS server runs in the benchmark's process, with sync always, unless
// TETHER_BENCH_NATS names the servers of a running cluster (for example the
// one scripts/nats-cluster.sh starts): each benchmark then opens a fresh
// stream there, with the cluster's default replicas, and deletes it after.

// BenchmarkAppend measures durable appends of 128-byte messages to one
// channel by 1 and by 64 concurrent publishers.
func BenchmarkAppend(b *testing.B) {
	for _, publishers := range []int{1, 64} {
		b.Run(fmt.Sprintf("Publishers=%d", publishers), func(b *testing.B) {
			s := openBench(b)
			data := make([]byte, 128)
			start := time.Now()
			b.ResetTimer()
			storetest.AppendSpread(b, s, publishers, b.N, func(int) string { return "bench" }, data)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		})
	}
}

// BenchmarkAppendChannels measures 64 publishers appending to 64 channels,
// one each: appends to different channels do not wait for each other in a
// Store, so this is the stream's own rate.
func BenchmarkAppendChannels(b *testing.B) {
	const publishers = 64
	s := openBench(b)
	data := make([]byte, 128)
	start := time.Now()
	b.ResetTimer()
	storetest.AppendSpread(b, s, publishers, b.N, func(p int) string { return fmt.Sprint("bench-", p) }, data)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkRead measures reading 100 messages after a cursor in a channel
// of 10,000.
func BenchmarkRead(b *testing.B) {
	s := openBench(b)
	const total, page = 10_000, 100
	var wg sync.WaitGroup
	data := make([]byte, 128)
	for range 50 { // concurrent, as in pebblestore
		wg.Go(func() {
			for range total / 50 {
				if _, err := s.Append(b.Context(), "bench", data, store.AppendOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// The only channel of the stream: its cursors are 1..total.
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		after := formatCursor(uint64(i*page) % (total - page))
		r, err := s.Read(b.Context(), "bench", after, page)
		if err != nil || len(r.Messages) != page {
			b.Fatalf("Read after %s: %d messages, %v", after, len(r.Messages), err)
		}
	}
}

// BenchmarkReadCaughtUp measures what a caught-up subscriber's read costs:
// 99 messages after a cursor among the channel's newest, on a channel that
// is in use (read before the appends).
func BenchmarkReadCaughtUp(b *testing.B) {
	s := openBench(b)
	const page = 100
	if _, err := s.Read(b.Context(), "caughtup", store.Start, 1); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 128)
	var after store.Cursor
	for i := range page {
		res, err := s.Append(b.Context(), "caughtup", data, store.AppendOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			after = res.ID
		}
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := s.Read(b.Context(), "caughtup", after, page)
		if err != nil || len(r.Messages) != page-1 {
			b.Fatalf("Read after %s: %d messages, %v", after, len(r.Messages), err)
		}
	}
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s := openBenchStore(b)
	// The first append waits for the new stream's leader: not timed.
	if _, err := s.Append(b.Context(), "warmup", []byte("x"), store.AppendOptions{}); err != nil {
		b.Fatal(err)
	}
	return s
}

func openBenchStore(b *testing.B) *Store {
	if urls := os.Getenv("TETHER_BENCH_NATS"); urls != "" {
		s := openStore(b, urls, Config{Stream: "BENCH_" + nuid.Next()})
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			if err := s.js.DeleteStream(ctx, s.cfg.Stream); err != nil {
				b.Errorf("delete stream %s: %v", s.cfg.Stream, err)
			}
		})
		return s
	}
	srv := startServer(b, b.TempDir())
	return openStore(b, srv.ClientURL(), Config{})
}
