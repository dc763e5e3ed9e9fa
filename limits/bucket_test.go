package limits

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// fakeClock is an injected clock that only moves when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestRateLimiterBurstAndRefill(t *testing.T) {
	c := newClock()
	r := NewRateLimiter(10, 3, 100, c.now) // 10/s, burst 3
	for i := range 3 {
		if ok, _ := r.Allow("alice"); !ok {
			t.Fatalf("publish %d within the burst refused", i)
		}
	}
	ok, wait := r.Allow("alice")
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("past the burst: ok=%v wait=%v, want refused with 100ms", ok, wait)
	}
	// A refusal takes nothing: the wait does not grow.
	if _, wait2 := r.Allow("alice"); wait2 != wait {
		t.Errorf("second refusal wait %v, want %v", wait2, wait)
	}
	// Other users have their own bucket.
	if ok, _ := r.Allow("bob"); !ok {
		t.Error("bob refused because of alice")
	}
	c.advance(40 * time.Millisecond)
	if ok, wait := r.Allow("alice"); ok || wait != 60*time.Millisecond {
		t.Errorf("after 40ms: ok=%v wait=%v, want refused with 60ms", ok, wait)
	}
	c.advance(60 * time.Millisecond)
	if ok, _ := r.Allow("alice"); !ok {
		t.Error("after the wait: refused")
	}
	// Sustained: one per 100ms passes, faster does not.
	for i := range 20 {
		c.advance(100 * time.Millisecond)
		if ok, _ := r.Allow("alice"); !ok {
			t.Fatalf("sustained publish %d at the rate refused", i)
		}
		if ok, _ := r.Allow("alice"); ok {
			t.Fatalf("publish %d above the rate allowed", i)
		}
	}
	// The clock going back refills nothing.
	c.advance(-time.Hour)
	if ok, _ := r.Allow("alice"); ok {
		t.Error("clock went back and a token appeared")
	}
}

func TestRateLimiterEvictsIdle(t *testing.T) {
	c := newClock()
	r := NewRateLimiter(10, 2, 1000, c.now)
	for i := range 100 {
		r.Allow(fmt.Sprint("user", i))
	}
	if r.Len() != 100 {
		t.Fatalf("Len = %d, want 100", r.Len())
	}
	// Once they have refilled (2 tokens at 10/s: 200ms), each call drops up
	// to two idle buckets from the cold end.
	c.advance(time.Second)
	for range 60 {
		r.Allow("active")
	}
	if r.Len() != 1 {
		t.Errorf("Len = %d after the others went idle, want 1", r.Len())
	}
}

func TestRateLimiterBounded(t *testing.T) {
	c := newClock()
	r := NewRateLimiter(1, 1, 10, c.now)
	for i := range 1000 {
		r.Allow(fmt.Sprint("k", i)) // each one empties its bucket: none is idle
		if r.Len() > 10 {
			t.Fatalf("Len = %d after %d keys, want <= 10", r.Len(), i+1)
		}
	}
	// The most recent keys are kept: k999 is still empty.
	if ok, _ := r.Allow("k999"); ok {
		t.Error("the most recent bucket was evicted")
	}
}

// TestRateLimiterRealClock runs with the default clock (time.Now) inside
// a synctest bubble, where time only moves when every goroutine waits.
func TestRateLimiterRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRateLimiter(2, 1, 10, nil)
		if ok, _ := r.Allow("a"); !ok {
			t.Fatal("first refused")
		}
		ok, wait := r.Allow("a")
		if ok || wait != 500*time.Millisecond {
			t.Fatalf("ok=%v wait=%v, want refused with 500ms", ok, wait)
		}
		time.Sleep(wait) // fake time inside the bubble
		if ok, _ := r.Allow("a"); !ok {
			t.Error("refused after waiting the returned wait")
		}
	})
}
