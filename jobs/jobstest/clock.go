package jobstest

import (
	"slices"
	"sync"
	"time"

	"github.com/tether-run/tether/jobs"
)

// Clock is a jobs.Clock that moves only when Advance moves it, so that a
// test runs leases, retries and graces to the instant without waiting for
// them. Advance calls every callback that comes due in the goroutine that
// called it, in order of their times, and returns when the last has
// returned: a Service's lease sweep and its grace timers have then run.
//
// Callbacks set with a delay of zero or less run at once in their own
// goroutine, as time.AfterFunc runs them.
//
// The zero value is not usable; NewClock makes one.
type Clock struct {
	moving sync.Mutex // held by Advance: one move at a time

	mu     sync.Mutex
	now    time.Time      // guarded by mu
	timers []*manualTimer // guarded by mu: pending, in no order
	seq    int            // guarded by mu: orders timers set for one instant
}

// NewClock returns a Clock that reads start (without its monotonic
// reading) until it is advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start.Round(0)} }

// Now implements jobs.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements jobs.Clock.
func (c *Clock) AfterFunc(d time.Duration, f func()) jobs.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, at: c.now.Add(d), f: f, seq: c.seq}
	c.seq++
	if d <= 0 {
		go f()
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock d forward, calling each callback as the clock
// reaches its time (the clock reads that time meanwhile), and returns once
// every callback due by then has returned, those the callbacks themselves
// set included.
func (c *Clock) Advance(d time.Duration) {
	c.moving.Lock()
	defer c.moving.Unlock()
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		t := c.nextLocked(end)
		if t == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		c.now = t.at
		c.mu.Unlock()
		t.f()
	}
}

// Pending returns how many callbacks are set and not yet called.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// nextLocked removes and returns the earliest timer due by end, or nil.
func (c *Clock) nextLocked(end time.Time) *manualTimer {
	i := -1
	for j, t := range c.timers {
		if t.at.After(end) {
			continue
		}
		if i < 0 || t.at.Before(c.timers[i].at) || (t.at.Equal(c.timers[i].at) && t.seq < c.timers[i].seq) {
			i = j
		}
	}
	if i < 0 {
		return nil
	}
	t := c.timers[i]
	c.timers = slices.Delete(c.timers, i, i+1)
	return t
}

// manualTimer is one callback set on a Clock.
type manualTimer struct {
	c   *Clock
	at  time.Time
	f   func()
	seq int
}

// Stop implements jobs.Timer.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}
