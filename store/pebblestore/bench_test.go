package pebblestore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/storetest"
	"golang.org/x/sys/unix"
)

// BenchmarkAppend measures durable appends of 128-byte messages to one
// channel by 1 and by 64 concurrent publishers. appends/fsync is how many
// appends a group commit carried on average.
func BenchmarkAppend(b *testing.B) {
	for _, publishers := range []int{1, 64} {
		b.Run(fmt.Sprintf("Publishers=%d", publishers), func(b *testing.B) {
			s := openBench(b)
			data := make([]byte, 128)
			syncs0, appends0 := s.stats.syncs.Load(), s.stats.appends.Load()
			start := time.Now()
			b.ResetTimer()
			storetest.AppendSpread(b, s, publishers, b.N, func(int) string { return "bench" }, data)
			b.StopTimer()
			elapsed := time.Since(start)
			syncs, appends := s.stats.syncs.Load()-syncs0, s.stats.appends.Load()-appends0
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
			if syncs > 0 {
				b.ReportMetric(float64(appends)/float64(syncs), "appends/fsync")
			}
		})
	}
}

// BenchmarkRead measures reading 100 messages after a cursor in a channel
// of 10,000.
func BenchmarkRead(b *testing.B) {
	s := openBench(b)
	const total, page = 10_000, 100
	var wg sync.WaitGroup
	data := make([]byte, 128)
	for range 50 { // concurrent, so that loading shares fsyncs
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
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		after := formatCursor(uint64(i*page) % (total - page))
		r, err := s.Read(b.Context(), "bench", after, page)
		if err != nil || len(r.Messages) != page {
			b.Fatalf("Read after %s: %d messages, %v", after, len(r.Messages), err)
		}
	}
}

// BenchmarkDiskSync measures the disk itself: one 4 KiB write followed by
// fdatasync (what Pebble's WAL does per commit) or fsync.
func BenchmarkDiskSync(b *testing.B) {
	for _, mode := range []string{"fdatasync", "fsync"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "sync"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 4096)
			for b.Loop() {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if mode == "fsync" {
					err = f.Sync()
				} else {
					err = unix.Fdatasync(int(f.Fd()))
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

// BenchmarkBounds measures Bounds of a channel whose state is in memory
// (Warm) and of one whose state was evicted and is loaded from its meta on
// disk (Cold): what a channel's first use after ChannelIdle costs.
func BenchmarkBounds(b *testing.B) {
	for _, cold := range []bool{false, true} {
		b.Run(map[bool]string{false: "Warm", true: "Cold"}[cold], func(b *testing.B) {
			s := openBench(b)
			if _, err := s.Append(b.Context(), "bench", make([]byte, 128), store.AppendOptions{}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if cold {
					s.mu.Lock()
					s.dropLocked("bench")
					s.mu.Unlock()
				}
				if bd, err := s.Bounds(b.Context(), "bench"); err != nil || bd.Latest != "1" {
					b.Fatalf("Bounds = %+v, %v", bd, err)
				}
			}
		})
	}
}
