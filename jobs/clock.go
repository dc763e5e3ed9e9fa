package jobs

import "time"

// Clock is where a Service reads the time and sets its timers: lease
// ends, the lease sweep, retry_at and the backoff before it, attempt
// deadlines, the cancel grace and the follow grace. Config.Clock nil means
// the real time (time.Now and time.AfterFunc). Tests inject a clock they
// move by hand (jobstest.Clock) to run leases and graces without waiting.
//
// What a Service writes in events (lease_until, retry_at) is read from the
// Clock; what the store stamps on each message (a job's created, started
// and ended times as folded from its channel) is the store's time. The two
// agree as long as the Clock is the real time.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc arranges for f to be called once d has passed (at once
	// when d <= 0), unless the returned Timer is stopped first. It never
	// calls f itself: the real clock calls f in its own goroutine, as
	// time.AfterFunc does; a clock moved by hand may call it in the
	// goroutine that moves it.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a call a Clock's AfterFunc will make. Stop prevents it and
// reports whether it did, as (*time.Timer).Stop does.
type Timer interface {
	Stop() bool
}

// realClock is the real time.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
