package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// evictChannels is how many channels TestEvictIdleChannels publishes to:
// 200,000 (20,000 under the race detector, ten times slower), or
// TETHER_EVICT_CHANNELS.
func evictChannels(t *testing.T) int {
	n := 200_000
	if raceEnabled {
		n = 20_000
	}
	if v := os.Getenv("TETHER_EVICT_CHANNELS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			t.Fatalf("TETHER_EVICT_CHANNELS=%q: want a number of at least 1000", v)
		}
	}
	return n
}

// heapInUse returns the bytes of live heap after a collection, with
// Pebble's memtable flushed, so that what it holds is alike from one call
// to the next.
func heapInUse(t *testing.T, s *Store) uint64 {
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestEvictIdleChannels publishes once to each of many channels, lets them
// go idle, and checks that their state leaves memory (the count, and the
// heap it held), and that an evicted channel still reads, dedups, orders
// and takes conditional appends as if it had stayed.
func TestEvictIdleChannels(t *testing.T) {
	n := evictChannels(t)
	clock := newFakeClock()
	s := openTest(t, Config{Now: clock.Now, ChannelIdle: time.Minute, TrimInterval: 10 * time.Millisecond, DedupWindow: time.Hour})
	name := func(i int) string { return "ev-" + strconv.Itoa(i) }

	before := heapInUse(t, s)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 128 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				r, err := s.Append(t.Context(), name(i), []byte(strconv.Itoa(i)), store.AppendOptions{IdempotencyKey: "k"})
				if err != nil || r.ID != "1" {
					t.Errorf("Append(%s) = %+v, %v; want ID 1", name(i), r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := s.channelCount(); got != n {
		t.Fatalf("%d channels in memory after publishing to %d; want all", got, n)
	}
	loaded := heapInUse(t, s)

	clock.Advance(2 * time.Minute)
	eventually(t, "idle channels evicted", func() bool { return s.channelCount() == 0 })
	// The channel state is about 100 bytes a channel, its name included;
	// what Pebble holds (its cache, table metadata, compactions finishing)
	// differs from one measure to the next, more so under the race
	// detector, so the test asks for the state's share to be freed, polling
	// while compactions come and go.
	const freedPerChannel = 64
	var evicted uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		evicted = heapInUse(t, s)
		if int64(loaded)-int64(evicted) >= int64(n)*freedPerChannel || time.Now().After(deadline) {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	t.Logf("%d channels: heap %d KiB before, %d KiB with every channel in memory, %d KiB after eviction",
		n, before>>10, loaded>>10, evicted>>10)
	if freed := int64(loaded) - int64(evicted); freed < int64(n)*freedPerChannel {
		t.Errorf("eviction of %d channels freed %d bytes of heap; want at least %d a channel", n, freed, freedPerChannel)
	}
	s.mu.RLock()
	peak := s.chansPeak
	s.mu.RUnlock()
	if peak != 0 {
		t.Errorf("chans map still sized for %d entries after eviction; want a new, empty map", peak)
	}

	for _, i := range []int{0, 1, n / 2, n - 1} {
		ch := name(i)
		r := readT(t, s, ch, store.Start)
		if len(r.Messages) != 1 || r.Messages[0].ID != "1" || string(r.Messages[0].Data) != strconv.Itoa(i) {
			t.Fatalf("Read(%s) after eviction = %+v; want its one message", ch, r)
		}
		if b, err := s.Bounds(t.Context(), ch); err != nil || b.Latest != "1" || b.Earliest != "1" {
			t.Fatalf("Bounds(%s) after eviction = %+v, %v; want 1..1", ch, b, err)
		}
	}
	// Evicted again, then used by appends before any read loads it.
	clock.Advance(2 * time.Minute)
	eventually(t, "read channels evicted again", func() bool { return s.channelCount() == 0 })
	ch := name(n / 3)
	if r, err := s.Append(t.Context(), ch, []byte("again"), store.AppendOptions{IdempotencyKey: "k"}); err != nil || !r.Duplicate || r.ID != "1" {
		t.Fatalf("retried append to an evicted channel = %+v, %v; want the duplicate of 1", r, err)
	}
	if r, err := s.Append(t.Context(), name(n/3+1), []byte("x"), store.AppendOptions{ExpectLatest: "0"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("append expecting 0 to an evicted channel at 1 = %+v, %v; want ErrConflict", r, err)
	}
	if r, err := s.Append(t.Context(), ch, []byte("2"), store.AppendOptions{ExpectLatest: "1"}); err != nil || r.ID != "2" {
		t.Fatalf("append expecting 1 to an evicted channel = %+v, %v; want ID 2", r, err)
	}
	if r := appendT(t, s, ch, "3", ""); r.ID != "3" {
		t.Fatalf("next append = %+v; want ID 3", r)
	}
	r := readT(t, s, ch, store.Start)
	if len(r.Messages) != 3 || r.Messages[1].ID != "2" || r.Messages[2].ID != "3" {
		t.Fatalf("Read after appends to an evicted channel = %+v; want 1, 2, 3", r.Messages)
	}
}

// TestEvictKeepsWaitedChannels checks that a channel a Wait holds stays in
// memory past the idle bound and its Wait wakes on the next append, and
// that a Wait on an evicted channel loads it and wakes as well.
func TestEvictKeepsWaitedChannels(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, Config{Now: clock.Now, ChannelIdle: time.Minute, TrimInterval: 10 * time.Millisecond})
	appendT(t, s, "held", "1", "")
	appendT(t, s, "cold", "1", "")
	appendT(t, s, "marker", "1", "")

	held := make(chan error, 1)
	go func() { held <- s.Wait(t.Context(), "held", "1") }()
	eventually(t, "Wait registered", func() bool { return s.waiterCount() == 1 })
	clock.Advance(2 * time.Minute)
	eventually(t, "idle channels evicted", func() bool { return !s.inMemory("marker") && !s.inMemory("cold") })
	if !s.inMemory("held") {
		t.Fatal("a channel with a Wait was evicted")
	}

	cold := make(chan error, 1)
	go func() { cold <- s.Wait(t.Context(), "cold", "1") }()
	eventually(t, "second Wait registered", func() bool { return s.waiterCount() == 2 })
	appendT(t, s, "held", "2", "")
	appendT(t, s, "cold", "2", "")
	for what, ch := range map[string]chan error{"held": held, "cold": cold} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Wait on %s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Wait on %s not woken by an append within 5s", what)
		}
	}
	if err := s.Wait(t.Context(), "cold", "3"); !errors.Is(err, store.ErrCursorAhead) {
		t.Errorf("Wait past the end of an evicted channel: %v; want ErrCursorAhead", err)
	}
}

// TestEvictedChannelsAgeOut checks that MaxAge still deletes the messages
// of channels that are not in memory, more of them than one trim visits.
func TestEvictedChannelsAgeOut(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, Config{Now: clock.Now, ChannelIdle: time.Minute, TrimInterval: 10 * time.Millisecond,
		Retention: store.Retention{MaxAge: time.Hour}})
	n := 3*maxColdTrim + 7
	for i := range n {
		appendT(t, s, fmt.Sprintf("age-%d", i), "old", "")
	}
	clock.Advance(2 * time.Minute)
	eventually(t, "channels evicted", func() bool { return s.channelCount() == 0 })
	clock.Advance(time.Hour)
	for i := range n {
		k := msgKey(fmt.Sprintf("age-%d", i), 1)
		eventually(t, "expired message of an evicted channel deleted", func() bool { return !keyExists(t, s, k) })
	}
	ch := fmt.Sprintf("age-%d", n-1)
	if b, err := s.Bounds(t.Context(), ch); err != nil || b.Latest != "1" || b.Earliest != "" {
		t.Fatalf("Bounds after age-out = %+v, %v; want latest 1, nothing retained", b, err)
	}
	if r := appendT(t, s, ch, "new", ""); r.ID != "2" {
		t.Fatalf("append after age-out = %+v; want ID 2", r)
	}
}

// TestEvictionUnderLoad appends, reads and waits on a few channels while
// their state is evicted as soon as it is idle, and checks that every
// follower sees every message once, in order, with no Wait left hanging.
func TestEvictionUnderLoad(t *testing.T) {
	s := openTest(t, Config{ChannelIdle: time.Nanosecond, TrimInterval: 10 * time.Millisecond})
	const channels, per = 6, 150
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for c := range channels {
		ch := fmt.Sprintf("load-%d", c)
		wg.Go(func() { // appender, each append retried once with its key
			for i := 1; i <= per; i++ {
				for range 2 {
					r, err := s.Append(ctx, ch, []byte(strconv.Itoa(i)), store.AppendOptions{IdempotencyKey: strconv.Itoa(i)})
					if err != nil || string(r.ID) != strconv.Itoa(i) {
						t.Errorf("Append(%s, %d) = %+v, %v", ch, i, r, err)
						return
					}
				}
			}
		})
		// Half the channels have a follower that Waits, which keeps their
		// state in memory while it waits; the others only pollers.
		wg.Go(func() { follow(ctx, t, s, ch, per, c%2 == 0) })
		wg.Go(func() { follow(ctx, t, s, ch, per, false) })
	}
	wg.Wait()
	s.mu.RLock()
	dropped := s.dropped
	s.mu.RUnlock()
	if dropped == 0 {
		t.Error("no channel state was dropped during the load; the test exercised nothing")
	}
	t.Logf("channel state dropped %d times during the load", dropped)
}

// follow reads ch from the start until it has seen want messages,
// checking their order. Caught up, it Waits, or (without wait) polls every
// millisecond, holding no Wait, so that the channel's state is evicted and
// loaded again under its reads.
func follow(ctx context.Context, t *testing.T, s *Store, ch string, want int, wait bool) {
	cur, seen := store.Start, 0
	for seen < want {
		r, err := s.Read(ctx, ch, cur, 32)
		if err != nil {
			t.Errorf("Read(%s): %v", ch, err)
			return
		}
		for _, m := range r.Messages {
			seen++
			if string(m.ID) != strconv.Itoa(seen) || string(m.Data) != string(m.ID) {
				t.Errorf("follower of %s got %s=%q as message %d", ch, m.ID, m.Data, seen)
				return
			}
		}
		cur = r.Next
		if len(r.Messages) == 0 && !wait {
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				t.Errorf("follower of %s: %d of %d seen: %v", ch, seen, want, ctx.Err())
				return
			}
		} else if len(r.Messages) == 0 {
			if err := s.Wait(ctx, ch, cur); err != nil {
				t.Errorf("Wait(%s, %s) with %d of %d seen: %v", ch, cur, seen, want, err)
				return
			}
		}
	}
}
