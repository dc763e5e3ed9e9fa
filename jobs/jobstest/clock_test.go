package jobstest

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	var mu sync.Mutex
	var got []string
	record := func(s string) func() {
		return func() {
			mu.Lock()
			got = append(got, s+"@"+c.Now().Sub(t0).String())
			mu.Unlock()
		}
	}
	c.AfterFunc(3*time.Second, record("c"))
	c.AfterFunc(time.Second, record("a"))
	stopped := c.AfterFunc(2*time.Second, record("never"))
	c.AfterFunc(time.Second, func() {
		record("b")()
		c.AfterFunc(time.Second, record("set-by-b")) // due within the same Advance
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	c.Advance(2500 * time.Millisecond)
	want := []string{"a@1s", "b@1s", "set-by-b@2s"}
	if mu.Lock(); !slices.Equal(got, want) {
		t.Fatalf("after 2.5s: %v; want %v", got, want)
	}
	mu.Unlock()
	if now := c.Now(); !now.Equal(t0.Add(2500 * time.Millisecond)) {
		t.Fatalf("Now = %v; want t0+2.5s", now)
	}
	if c.Pending() != 1 {
		t.Fatalf("Pending = %d; want 1", c.Pending())
	}
	c.Advance(500 * time.Millisecond)
	if mu.Lock(); got[len(got)-1] != "c@3s" {
		t.Fatalf("after 3s: %v; want c@3s last", got)
	}
	mu.Unlock()

	// A callback due now runs at once, in its own goroutine, as
	// time.AfterFunc's does.
	done := make(chan struct{})
	c.AfterFunc(0, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("AfterFunc(0) never ran")
	}
}
