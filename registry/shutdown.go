package registry

import (
	"context"
	"time"

	"github.com/tether-run/tether/conn"
)

// Shutdown refuses new connections (Open returns ErrRegistryClosed, and so
// do Opens waiting for a session key), then works on a snapshot of the live
// set, never on the live map:
//
//  1. It calls every Peer's NotifyShutdown, oldest connection first, with
//     reconnect hints evenly spread over [0, spread), so that clients do
//     not all come back at once.
//  2. It waits until every connection has ended (clients acknowledge by
//     closing), until ctx's deadline minus a reserve for the next steps
//     (min(1s, a quarter of the time left)), or until ctx is done.
//  3. It calls Peer.Close(CloseGraceful, ReasonShutdown) for the rest and
//     waits for them until half the reserve is left.
//  4. It calls Peer.Close(CloseReset, ReasonShutdown) for those still
//     there and waits for their End until ctx is done.
//
// Without a deadline, step 2 waits until ctx is cancelled, and steps 3 and 4
// follow each other at once. It returns nil when every connection ended,
// ctx.Err() otherwise. Peers are called on the caller's goroutine, one
// after the other, with no lock held. Shutdown starts no goroutine.
func (r *Registry) Shutdown(ctx context.Context, spread time.Duration) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.closing)
	}
	r.mu.Unlock()

	hs := r.snapshot()
	ackBy, graceBy := shutdownPhases(ctx, time.Now())
	notifyAll(hs, spread)
	rest := waitEnded(ctx, hs, ackBy)
	if len(rest) > 0 {
		r.cfg.Logger.Info("shutdown: closing connections that did not leave",
			"notified", len(hs), "remaining", len(rest))
		closeAll(rest, conn.CloseGraceful)
		rest = waitEnded(ctx, rest, graceBy)
	}
	if len(rest) > 0 {
		r.cfg.Logger.Info("shutdown: resetting connections", "remaining", len(rest))
		closeAll(rest, conn.CloseReset)
		rest = waitEnded(ctx, rest, time.Time{})
	}
	if len(rest) > 0 {
		r.cfg.Logger.Warn("shutdown: deadline passed before every connection ended", "remaining", len(rest))
		return ctx.Err()
	}
	return nil
}

// Closing returns a channel closed when Shutdown begins. Work the
// Registry does not track as a connection (a request waiting for a job's
// outcome, say) ends on it, so that one Shutdown reaches everything.
func (r *Registry) Closing() <-chan struct{} { return r.closing }

// shutdownPhases returns when Shutdown stops waiting for clients to leave
// (ackBy) and for graceful closes (graceBy); zero means until ctx is done.
func shutdownPhases(ctx context.Context, now time.Time) (ackBy, graceBy time.Time) {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}, now
	}
	reserve := min(time.Second, d.Sub(now)/4)
	if reserve < 0 {
		reserve = 0
	}
	return d.Add(-reserve), d.Add(-reserve / 2)
}

// notifyAll tells every connection not yet ended to reconnect: the i-th of
// n after spread*i/n.
func notifyAll(hs []*Handle, spread time.Duration) {
	spread = max(spread, 0)
	for i, h := range hs {
		if ended(h) {
			continue
		}
		hint := time.Duration(float64(spread) * float64(i) / float64(len(hs)))
		h.peer.NotifyShutdown(hint)
	}
}

func closeAll(hs []*Handle, mode conn.CloseMode) {
	for _, h := range hs {
		if !ended(h) {
			_ = h.peer.Close(mode, conn.ReasonShutdown) // nothing to do about it: the next step follows
		}
	}
}

// waitEnded waits until every h has ended, until by (zero: no bound) or
// until ctx is done, and returns those that have not ended.
func waitEnded(ctx context.Context, hs []*Handle, by time.Time) []*Handle {
	var expired <-chan time.Time
	if !by.IsZero() {
		t := time.NewTimer(time.Until(by))
		defer t.Stop()
		expired = t.C
	}
	for i, h := range hs {
		select {
		case <-h.Done():
			continue
		case <-expired:
		case <-ctx.Done():
		}
		var rest []*Handle
		for _, h := range hs[i:] {
			if !ended(h) {
				rest = append(rest, h)
			}
		}
		return rest
	}
	return nil
}

func ended(h *Handle) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.done.Fired()
}
