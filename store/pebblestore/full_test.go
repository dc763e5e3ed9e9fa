package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/tmpfstest"
	"github.com/tether-run/tether/store"
)

// The tests here run the store on a small tmpfs, which needs root: they
// skip without it.

// testReserve is the reserve the tests keep on their 32 MiB tmpfs.
const testReserve = 8 << 20

// errorCounter is a slog handler that counts records at Error level.
type errorCounter struct {
	n atomic.Int64
}

func (c *errorCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *errorCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		c.n.Add(1)
	}
	return nil
}
func (c *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *errorCounter) WithGroup(string) slog.Handler      { return c }

// publishLog appends to one channel from several publishers, with
// idempotency keys, and remembers what was acknowledged and what refused.
type publishLog struct {
	mu      sync.Mutex
	acked   map[store.Cursor]string // guarded by mu; cursor -> key
	refused map[string]bool         // guarded by mu; keys answered ErrNoSpace
}

// fill appends 8 KiB random (incompressible) messages from 4 publishers
// until each has seen ErrNoSpace 20 times, failing the test if a refusal
// takes a second, an append five, or an error is anything else.
func (l *publishLog) fill(t *testing.T, s *Store, round string) (slowest time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	payload := make([]byte, 8<<10)
	rand.Read(payload)
	for p := range 4 {
		wg.Go(func() {
			for i, refusals := 0, 0; refusals < 20; i++ {
				key := fmt.Sprintf("%s/%d/%d", round, p, i)
				// The bound turns a hang (the store before the reserve) into
				// a failure.
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				start := time.Now()
				res, err := s.Append(ctx, "ch", append([]byte(key+" "), payload...), store.AppendOptions{IdempotencyKey: key})
				took := time.Since(start)
				cancel()
				switch {
				case err == nil:
					l.mu.Lock()
					l.acked[res.ID] = key
					l.mu.Unlock()
				case errors.Is(err, store.ErrNoSpace):
					refusals++
					l.mu.Lock()
					l.refused[key] = true
					l.mu.Unlock()
					mu.Lock()
					slowest = max(slowest, took)
					mu.Unlock()
				default:
					t.Errorf("append %s: %v; want success or ErrNoSpace", key, err)
					return
				}
				if err != nil && took > time.Second {
					// Successful appends wait for fsyncs and Pebble's
					// compactions; only refusals must be quick.
					t.Errorf("append %s took %v to answer %v; want under 1s", key, took, err)
				}
			}
		})
	}
	wg.Wait()
	return slowest
}

// verify reads the channel back and checks that every acknowledged message
// is there exactly once, at its cursor, and no refused one.
func (l *publishLog) verify(t *testing.T, s *Store) {
	t.Helper()
	r, err := s.Read(t.Context(), "ch", store.Start, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	for i, m := range r.Messages {
		if m.ID != formatCursor(uint64(i+1)) {
			t.Fatalf("message %d has ID %s; want a log without holes", i, m.ID)
		}
		key, _, _ := stringsCut(string(m.Data), " ")
		if seen[key] {
			t.Fatalf("message %s appears twice", key)
		}
		seen[key] = true
		if l.refused[key] {
			t.Errorf("refused append %s is in the log at %s", key, m.ID)
		}
		if want, ok := l.acked[m.ID]; ok && want != key {
			t.Errorf("message %s is %s; was acknowledged as %s", m.ID, key, want)
		}
	}
	for id, key := range l.acked {
		if !seen[key] {
			t.Errorf("acknowledged message %s (%s) is missing", key, id)
		}
	}
}

func stringsCut(s, sep string) (before, after string, found bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// TestFullDiskRefusesAppendsAndResumes fills a 32 MiB tmpfs through the
// store: appends must be refused with ErrNoSpace at once, with no panic
// and no flood of log errors, while reads, bounds and waits go on; once
// the volume grows, appends resume by themselves; and after a reopen every
// acknowledged message is there exactly once.
func TestFullDiskRefusesAppendsAndResumes(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	logs := &errorCounter{}
	cfg := Config{Dir: dir, Reserve: testReserve, Logger: slog.New(logs)}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := &publishLog{acked: map[store.Cursor]string{}, refused: map[string]bool{}}

	slowest := l.fill(t, s, "a")
	t.Logf("%d appends acknowledged before the disk filled; slowest ErrNoSpace %v", len(l.acked), slowest)
	// Pebble preallocates each write-ahead log to 1.1 times the memtable
	// (4.4 MiB) and keeps a few for reuse: on 32 MiB, that is most of it.
	if len(l.acked) < 200 {
		t.Errorf("only %d appends of 8 KiB before the reserve; want the volume used", len(l.acked))
	}
	if h := s.Health(); !h.Degraded || !h.ReadOnly || h.Reason == "" {
		t.Errorf("Health() = %+v; want degraded and read-only, with a reason", h)
	}
	l.verify(t, s)
	b, err := s.Bounds(t.Context(), "ch")
	if err != nil || b.Latest != formatCursor(uint64(len(l.acked))) {
		t.Errorf("Bounds = %+v, %v; want Latest %d", b, err, len(l.acked))
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait(t.Context(), "ch", b.Latest) }()
	cpu := cpuOver(t, time.Second)
	t.Logf("%v of CPU in 1s on the full disk", cpu)
	if cpu > 300*time.Millisecond {
		t.Errorf("the process used %v of CPU in 1s on a full disk with no appends; want no spin", cpu)
	}

	start := time.Now()
	tmpfstest.Resize(t, dir, "64m")
	var res store.AppendResult
	eventually(t, "an append after the volume grew", func() bool {
		res, err = s.Append(t.Context(), "ch", []byte("b/0 after"), store.AppendOptions{IdempotencyKey: "b/0"})
		return err == nil
	})
	t.Logf("appends resumed %v after the volume grew", time.Since(start))
	l.mu.Lock()
	l.acked[res.ID] = "b/0"
	l.mu.Unlock()
	if err := <-waited; err != nil {
		t.Errorf("Wait across the full disk: %v", err)
	}
	if h := s.Health(); h.Degraded {
		t.Errorf("Health() = %+v after space returned; want healthy", h)
	}
	l.fill(t, s, "c") // and fill the bigger volume again
	if n := logs.n.Load(); n > 20 {
		t.Errorf("%d errors logged; want a few, not a flood", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tmpfstest.Resize(t, dir, "96m")
	s2 := openTest(t, cfg)
	l.verify(t, s2)
	t.Logf("%d acknowledged messages there after the reopen", len(l.acked))
}

// cpuOver returns the CPU time the process uses during d.
func cpuOver(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	select {
	case <-time.After(d):
	case <-t.Context().Done():
	}
	return cpu() - before
}

// fillDisk writes a file in dir until the filesystem is full, and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	for _, err := f.Write(buf[:4096]); err == nil; _, err = f.Write(buf[:4096]) {
	}
	return path
}

// TestStartOnFullDiskOpensReadOnly starts the store on a full disk: it
// must open read-only, serve reads and waits, refuse appends at once, and
// take appends again by itself once space returns.
func TestStartOnFullDiskOpensReadOnly(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	cfg := Config{Dir: dir, Reserve: testReserve}
	s := openTest(t, cfg)
	for i := range 100 {
		if _, err := s.Append(t.Context(), "ch", fmt.Appendf(nil, "%d", i), store.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	filler := fillDisk(t, dir)

	s = openTest(t, cfg)
	if !s.readOnly {
		t.Error("the store opened on a full disk is not read-only")
	}
	if h := s.Health(); !h.ReadOnly || !h.Degraded {
		t.Errorf("Health() = %+v; want read-only", h)
	}
	r, err := s.Read(t.Context(), "ch", store.Start, 1000)
	if err != nil || len(r.Messages) != 100 {
		t.Fatalf("Read on a read-only store = %d messages, %v; want 100", len(r.Messages), err)
	}
	start := time.Now()
	if _, err := s.Append(t.Context(), "ch", []byte("x"), store.AppendOptions{IdempotencyKey: "x"}); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("Append on a full disk: %v; want ErrNoSpace", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("ErrNoSpace took %v; want under 1s", took)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait(t.Context(), "ch", r.Next) }()

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an append once space returned", func() bool {
		_, err := s.Append(t.Context(), "ch", []byte("101"), store.AppendOptions{IdempotencyKey: "101"})
		return err == nil
	})
	if s.readOnly {
		t.Error("the store still is read-only")
	}
	if err := <-waited; err != nil {
		t.Errorf("Wait across the reopen: %v", err)
	}
	r, err = s.Read(t.Context(), "ch", store.Start, 1000)
	if err != nil || len(r.Messages) != 101 {
		t.Fatalf("Read after the reopen = %d messages, %v; want 101", len(r.Messages), err)
	}
}

// TestDiskFilledByAnotherProcess fills the disk from outside while
// publishers append, so that Pebble itself may run into ENOSPC before the
// store's next free-space check: there must be no panic and no hang,
// appends must end up refused, and once the space is freed they resume
// with nothing acknowledged lost. A refused append may have been made here
// (ErrNoSpace's documented exception), so only acknowledged ones are
// checked.
func TestDiskFilledByAnotherProcess(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	cfg := Config{Dir: dir, Reserve: testReserve}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := &publishLog{acked: map[store.Cursor]string{}, refused: map[string]bool{}}
	filled := make(chan string)
	go func() { filled <- fillDisk(t, dir) }()
	l.fill(t, s, "a")
	filler := <-filled
	t.Logf("%d appends acknowledged; health %+v", len(l.acked), s.Health())
	if _, err := s.Read(t.Context(), "ch", store.Start, 10); err != nil {
		t.Fatalf("Read on a full disk: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an append after the filler went", func() bool {
		_, err := s.Append(t.Context(), "ch", []byte("b/0 x"), store.AppendOptions{IdempotencyKey: "b/0"})
		return err == nil
	})
	if fi, err := os.Stat(filepath.Join(dir, ballastName)); err != nil || fi.Size() != s.space.ballastSize {
		t.Errorf("ballast after space returned: %v, %v; want %d bytes", fi, err, s.space.ballastSize)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, cfg)
	l.refused = map[string]bool{} // may or may not be in the log
	l.verify(t, s2)
}

// TestENOSPCInsidePebble lets Pebble itself run into a full disk, as when
// another process fills it between two free-space checks: the reserve is
// lowered to one byte once the ballast is made, so that only Pebble's
// ENOSPC stops appends. The store must refuse appends rather than panic or
// hang, keep serving reads, and resume once space returns, with nothing
// acknowledged lost. Without a ballast to free, Pebble's commit fails: the
// store recovers from Pebble's fatal error and reopens the database.
func TestENOSPCInsidePebble(t *testing.T) {
	t.Run("ballast", func(t *testing.T) { testENOSPCInsidePebble(t, testReserve) })
	// A reserve of 3 bytes has a ballast of 0.
	t.Run("no ballast", func(t *testing.T) { testENOSPCInsidePebble(t, 3) })
}

func testENOSPCInsidePebble(t *testing.T, reserve int64) {
	dir := tmpfstest.Mount(t, "32m")
	logs := &errorCounter{}
	cfg := Config{Dir: dir, Reserve: reserve, Logger: slog.New(logs)}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.space.mu.Lock()
	s.space.reserve = 1
	s.space.mu.Unlock()
	l := &publishLog{acked: map[store.Cursor]string{}, refused: map[string]bool{}}
	filler := fillDisk(t, dir)
	l.fill(t, s, "a")
	t.Logf("%d appends acknowledged on the full disk; health %+v", len(l.acked), s.Health())
	if _, err := s.Read(t.Context(), "ch", store.Start, 10); err != nil {
		t.Fatalf("Read on a full disk: %v", err)
	}
	s.space.mu.Lock()
	s.space.reserve = reserve
	s.space.mu.Unlock()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an append after the filler went", func() bool {
		_, err := s.Append(t.Context(), "ch", []byte("b/0 x"), store.AppendOptions{IdempotencyKey: "b/0"})
		return err == nil
	})
	t.Logf("%d errors logged", logs.n.Load())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, cfg)
	l.refused = map[string]bool{} // may or may not be in the log
	l.verify(t, s2)
}

// TestStartOnFullDiskWithoutDatabase: with no database to open read-only,
// Open fails, and says the disk is full.
func TestStartOnFullDiskWithoutDatabase(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	fillDisk(t, dir)
	s, err := Open(Config{Dir: filepath.Join(dir, "db"), Reserve: testReserve})
	if err == nil {
		s.Close()
		t.Fatal("Open on a full disk without a database succeeded")
	}
	if !errors.Is(err, store.ErrNoSpace) {
		t.Errorf("Open on a full disk: %v; want ErrNoSpace", err)
	}
}
