package pebblestore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// pebbleLogger routes Pebble's printf-style log into slog.
type pebbleLogger struct {
	l *slog.Logger
	// errors limits Errorf: a flush that keeps failing is retried by
	// Pebble at once, logging each failure.
	errors *rateLimit
}

func newPebbleLogger(l *slog.Logger) pebbleLogger {
	return pebbleLogger{l: l, errors: &rateLimit{every: errorLogInterval}}
}

// errorLogInterval is the least time between two errors Pebble logs; those
// in between are counted, and the count goes with the next one logged.
const errorLogInterval = time.Second

func (p pebbleLogger) logf(level slog.Level, format string, args []any, attrs ...any) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, fmt.Sprintf(format, args...), attrs...)
	}
}

// Infof goes to Debug: Pebble narrates every WAL, flush and compaction.
func (p pebbleLogger) Infof(format string, args ...any) { p.logf(slog.LevelDebug, format, args) }

func (p pebbleLogger) Errorf(format string, args ...any) {
	if ok, dropped := p.errors.allow(time.Now()); ok {
		if dropped > 0 {
			p.logf(slog.LevelError, format, args, "suppressed", dropped)
		} else {
			p.logf(slog.LevelError, format, args)
		}
	}
}

// fatalError is what Fatalf panics with: the message, and the first error
// among its arguments.
type fatalError struct {
	msg string
	err error
}

func (f fatalError) Unwrap() error { return f.err }

func (f fatalError) Error() string { return "tether: pebblestore: pebble: " + f.msg }

// Fatalf is called by Pebble on invariant violations, data corruption and
// commit errors, and must not return: Pebble goes on as if the failed
// operation had succeeded if it does. It panics rather than exiting so that
// the panic carries a stack and a test sees it as a failure; the committer
// recovers the panic of a failed commit (see commitSafely).
func (p pebbleLogger) Fatalf(format string, args ...any) {
	f := fatalError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			f.err = err
			break
		}
	}
	p.l.Error(f.msg, "fatal", true)
	panic(f)
}

// rateLimit lets one event through per interval and counts the others.
type rateLimit struct {
	every time.Duration

	mu      sync.Mutex
	last    time.Time // guarded by mu
	dropped int       // guarded by mu
}

// allow reports whether an event at now goes through, and how many were
// held back since the last one that did.
func (r *rateLimit) allow(now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.dropped++
		return false, 0
	}
	r.last = now
	d := r.dropped
	r.dropped = 0
	return true, d
}
