package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tether-run/tether/store"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func appendT(t *testing.T, s *Store, channel, data, key string) store.AppendResult {
	t.Helper()
	r, err := s.Append(t.Context(), channel, []byte(data), store.AppendOptions{IdempotencyKey: key})
	if err != nil {
		t.Fatalf("Append(%q, %q): %v", channel, data, err)
	}
	return r
}

func readT(t *testing.T, s *Store, channel string, after store.Cursor) store.ReadResult {
	t.Helper()
	r, err := s.Read(t.Context(), channel, after, 100)
	if err != nil {
		t.Fatalf("Read(%q, after %q): %v", channel, after, err)
	}
	return r
}

// eventually polls cond every 5ms for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}

// keyExists reports whether the database holds k.
func keyExists(t *testing.T, s *Store, k []byte) bool {
	t.Helper()
	_, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	closer.Close()
	return true
}

func TestDedupWindowFakeClock(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, Config{DedupWindow: time.Minute, Now: clock.Now, TrimInterval: time.Hour})
	first := appendT(t, s, "ch", "a", "k")
	clock.Advance(time.Minute - time.Nanosecond)
	if r := appendT(t, s, "ch", "b", "k"); !r.Duplicate || r.ID != first.ID {
		t.Fatalf("append 1ns before the window ends = %+v; want Duplicate of %q", r, first.ID)
	}
	clock.Advance(time.Nanosecond)
	if r := appendT(t, s, "ch", "c", "k"); r.Duplicate || r.ID != "2" {
		t.Fatalf("append when the window ends = %+v; want new message 2", r)
	}
}

func TestTrimDeletesIdempotencyKeys(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, Config{DedupWindow: time.Minute, Now: clock.Now, TrimInterval: 10 * time.Millisecond})
	appendT(t, s, "ch", "a", "old")
	oldAt := clock.Now().UnixNano()
	clock.Advance(30 * time.Second)
	appendT(t, s, "ch", "b", "young")
	clock.Advance(30 * time.Second) // "old" is exactly a window old, "young" half

	eventually(t, "expired key deleted", func() bool {
		return !keyExists(t, s, idemKey("ch", "old")) && !keyExists(t, s, expiryKey(oldAt, "ch", "old"))
	})
	if !keyExists(t, s, idemKey("ch", "young")) {
		t.Fatal("key within the window was deleted")
	}
	if r := appendT(t, s, "ch", "c", "young"); !r.Duplicate {
		t.Fatalf("append with the young key = %+v; want Duplicate", r)
	}
}

func TestTrimKeepsReusedKey(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, Config{DedupWindow: time.Minute, Now: clock.Now, TrimInterval: time.Hour})
	appendT(t, s, "ch", "a", "k")
	oldAt := clock.Now().UnixNano()
	clock.Advance(2 * time.Minute)
	second := appendT(t, s, "ch", "b", "k") // reuses the expired key
	// Run the trim by hand: the first entry's expiry index entry must go,
	// the key itself must stay for the second append.
	s.trimIdemNow(t)
	if keyExists(t, s, expiryKey(oldAt, "ch", "k")) {
		t.Fatal("stale expiry entry kept")
	}
	if r := appendT(t, s, "ch", "c", "k"); !r.Duplicate || r.ID != second.ID {
		t.Fatalf("append after trim = %+v; want Duplicate of %q", r, second.ID)
	}
}

// trimIdemNow runs the idempotency trim directly. Only for tests whose
// ticker never fires, so it does not race with the committer.
func (s *Store) trimIdemNow(t *testing.T) {
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.trimIdem(b, s.cfg.Now().UnixNano()); err != nil {
		t.Error(err)
		return
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Error(err)
	}
}

func TestMaxAgeHidesBeforeTrim(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, Config{Retention: store.Retention{MaxAge: time.Minute}, Now: clock.Now, TrimInterval: time.Hour})
	appendT(t, s, "ch", "old", "")
	clock.Advance(30 * time.Second)
	young := appendT(t, s, "ch", "young", "")
	clock.Advance(30 * time.Second) // "old" is exactly MaxAge old

	r := readT(t, s, "ch", "0")
	if len(r.Messages) != 1 || r.Messages[0].ID != young.ID || r.Gap {
		t.Fatalf("Read after Start = %+v; want only %q, no gap", r, young.ID)
	}
	if r := readT(t, s, "ch", "0"); len(r.Messages) != 1 {
		t.Fatal("second read differs")
	}
	b, err := s.Bounds(t.Context(), "ch")
	if err != nil || b.Earliest != young.ID {
		t.Fatalf("Bounds = %+v, %v; want Earliest %q", b, err, young.ID)
	}
	if !keyExists(t, s, msgKey("ch", 1)) {
		t.Fatal("expired message deleted although the trimmer never ran")
	}
}

func TestTrimDeletesExpiredMessages(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	cfg := Config{Dir: dir, Retention: store.Retention{MaxAge: time.Minute}, Now: clock.Now, TrimInterval: 10 * time.Millisecond}
	s := openTest(t, cfg)
	for i := range 40 {
		appendT(t, s, "ch", fmt.Sprint(i), "")
		clock.Advance(time.Second)
	}
	// Messages 1..40 were accepted at +0s..+39s; now is +40s. Move to +80s:
	// messages up to +20s (seqs 1..21) are MaxAge old.
	clock.Advance(40 * time.Second)
	eventually(t, "expired messages deleted", func() bool {
		return !keyExists(t, s, msgKey("ch", 21)) && keyExists(t, s, msgKey("ch", 22))
	})
	if first, last, _ := s.visible("ch"); first != 22 || last != 40 {
		t.Fatalf("visible = %d..%d; want 22..40", first, last)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything expires; the sequence survives a restart without messages.
	clock.Advance(time.Hour)
	s = openTest(t, cfg)
	eventually(t, "every message deleted", func() bool {
		first, last, _ := s.visible("ch")
		return first == 41 && last == 40
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, cfg)
	if r := appendT(t, s, "ch", "after", ""); r.ID != "41" {
		t.Fatalf("append after everything expired and a restart got ID %q; want 41", r.ID)
	}
}

func TestClockGoingBackwards(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, Config{Now: clock.Now})
	a := appendT(t, s, "ch", "a", "")
	clock.Advance(-time.Hour)
	b := appendT(t, s, "ch", "b", "")
	if b.Time.Before(a.Time) {
		t.Fatalf("second append stamped %v, before the first's %v", b.Time, a.Time)
	}
}

func TestCursorAheadFromAnotherStore(t *testing.T) {
	a := openTest(t, Config{})
	b := openTest(t, Config{})
	var ahead store.AppendResult
	for range 3 {
		ahead = appendT(t, a, "ch", "x", "")
	}
	appendT(t, b, "ch", "y", "")
	if _, err := b.Read(t.Context(), "ch", ahead.ID, 10); !errors.Is(err, store.ErrCursorAhead) {
		t.Fatalf("Read with a cursor from a longer log: %v; want ErrCursorAhead", err)
	}
	if err := b.Wait(t.Context(), "ch", ahead.ID); !errors.Is(err, store.ErrCursorAhead) {
		t.Fatalf("Wait with a cursor from a longer log: %v; want ErrCursorAhead", err)
	}
}

// TestWaitLeavesNothing checks that Waits that end, however they end, leave
// no per-channel state behind.
func TestWaitLeavesNothing(t *testing.T) {
	s := openTest(t, Config{})
	appendT(t, s, "full", "x", "")
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(t.Context())
	for i := range 50 {
		ch := "full"
		if i%2 == 0 {
			ch = fmt.Sprintf("empty-%d", i%5)
		}
		after := store.Cursor("0")
		if ch == "full" {
			after = "1"
		}
		wg.Go(func() { _ = s.Wait(ctx, ch, after) })
	}
	eventually(t, "all waiters registered", func() bool { return s.waiterCount() == 50 })
	cancel()
	wg.Wait()

	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.chans) != 1 {
		t.Errorf("%d channels in memory after cancelled Waits; want 1", len(s.chans))
	}
	if c := s.chans["full"]; c.waiters != 0 || c.notify != nil {
		t.Errorf("channel after cancelled Waits has %d waiters, notify %v; want none", c.waiters, c.notify)
	}
}

func (s *Store) waiterCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, c := range s.chans {
		n += c.waiters
	}
	return n
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		trim time.Duration
	}{
		{"no MaxAge", Config{Dir: "d"}, time.Second},
		{"long MaxAge", Config{Dir: "d", Retention: store.Retention{MaxAge: time.Hour}}, time.Second},
		{"short MaxAge", Config{Dir: "d", Retention: store.Retention{MaxAge: 2 * time.Second}}, 500 * time.Millisecond},
		{"tiny MaxAge", Config{Dir: "d", Retention: store.Retention{MaxAge: time.Millisecond}}, 10 * time.Millisecond},
		{"explicit", Config{Dir: "d", TrimInterval: 3 * time.Second}, 3 * time.Second},
		{"explicit tiny", Config{Dir: "d", TrimInterval: time.Microsecond}, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		got, err := tt.in.withDefaults()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got.TrimInterval != tt.trim || got.DedupWindow != 10*time.Minute || got.Now == nil || got.Logger == nil {
			t.Errorf("%s: TrimInterval %v, DedupWindow %v; want %v, 10m, and a clock and logger", tt.name, got.TrimInterval, got.DedupWindow, tt.trim)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dir: "d", Retention: store.Retention{MaxAge: -1}},
		{Dir: "d", Retention: store.Retention{MaxMessages: -1}},
		{Dir: "d", DedupWindow: -1},
		{Dir: "d", TrimInterval: -1},
	} {
		if _, err := Open(cfg); err == nil {
			t.Errorf("Open(%+v) succeeded; want an error", cfg)
		}
	}
}

func TestOpenRefusesOtherFormat(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: newPebbleLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(versionKey, []byte{99}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(Config{Dir: dir}); err == nil {
		s.Close()
		t.Fatal("Open of a store in format 99 succeeded; want an error")
	}
}

func TestOpenTwice(t *testing.T) {
	s := openTest(t, Config{})
	if s2, err := Open(Config{Dir: s.cfg.Dir}); err == nil {
		s2.Close()
		t.Fatal("second Open of an open directory succeeded; want an error")
	}
}
