package session

import (
	"context"
	"sync"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/latch"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// sub is one subscription: while it is behind, a goroutine reads its
// channel from the store at its own cursor and queues message frames;
// caught up, it parks (park.go) with no goroutine. When the queue is full
// it waits, and so stops reading: the log is the buffer, nothing is
// dropped.
//
// A subscription has a context only while a goroutine runs it (enter to
// leave): a parked one, the most numerous kind, holds none. Its end
// (unsubscribe, a denial after a refresh, the session's end: stop or end)
// cancels the running goroutine's context and keeps it from parking
// again, or takes it out of its group if it is parked.
type sub struct {
	s       *Session
	channel string
	started int64 // unix nanos: the lag clock of history starts here
	waiting Gauge // counts the subscription while it waits; may be nil

	// unfollow ends the follows of the subscription (nil if none). Set
	// when it begins; called once, by stopFollow.
	unfollow func(departed bool)

	parkedIn *parkGroup // guarded by Core.parking.mu; nil unless parked

	// delivered is the last cursor written to the client (its start
	// until a message is), once began. Guarded by Session.mu.
	delivered store.Cursor

	cancel context.CancelFunc // guarded by mu; ends the running goroutine's context; nil while none runs
	// done fires once no goroutine runs the subscription and it is not
	// parked, for good (finish). Guarded by mu.
	done latch.Latch

	// Small fields last, so that they pack.
	unfollowed sync.Once
	mu         sync.Mutex
	stopped    bool // guarded by mu; the subscription is ending: it runs and parks no more
	began      bool // guarded by Session.mu; the subscription has begun (Session.began)
}

// enter gives a goroutine that runs the subscription its context, which
// stop cancels; ok is false when the subscription or its session is
// ending. The context is not the session's child: the session's end
// reaches it through stop (Session.endSubs), so that a parked
// subscription leaves nothing in the session's context.
func (sb *sub) enter() (ctx context.Context, ok bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.stopped || sb.s.ctx.Err() != nil {
		return nil, false
	}
	ctx, sb.cancel = context.WithCancel(context.Background())
	return ctx, true
}

// leave releases the running goroutine's context: it is about to park.
func (sb *sub) leave() {
	sb.mu.Lock()
	cancel := sb.cancel
	sb.cancel = nil
	sb.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// stop ends the subscription's run: its goroutine's context is cancelled
// and it parks no more. Whoever holds it then finishes it.
func (sb *sub) stop() {
	sb.mu.Lock()
	sb.stopped = true
	cancel := sb.cancel
	sb.cancel = nil
	sb.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// isStopped reports whether the subscription is ending.
func (sb *sub) isStopped() bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.stopped
}

// end ends the subscription: a running goroutine stops and finishes it;
// a parked subscription is taken out of its group and finished here.
func (sb *sub) end() {
	sb.stop()
	if sb.s.c.parking.remove(sb) {
		sb.finish()
	}
}

// finish ends the subscription for good: it has no goroutine and is not
// parked.
func (sb *sub) finish() {
	sb.mu.Lock()
	sb.stopped = true
	cancel := sb.cancel
	sb.cancel = nil
	sb.done.Fire()
	sb.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// wait returns once the subscription has finished.
func (sb *sub) wait() {
	sb.mu.Lock()
	done := sb.done.Wait()
	sb.mu.Unlock()
	<-done
}

// resume carries a parked subscription on, on a fresh goroutine, after
// its group's wait returned err.
func (sb *sub) resume(after store.Cursor, err error) {
	ok := sb.s.goWork(func() {
		if err != nil {
			if ctx, ok := sb.enter(); ok {
				sb.fail(ctx, err)
			}
			sb.finish()
			return
		}
		sb.run(after, nil, false)
	})
	if !ok {
		sb.finish() // the session is ending
	}
}

// run streams the channel and finishes the subscription, unless it
// parked.
func (sb *sub) run(cursor store.Cursor, first *page, caughtUp bool) {
	ctx, ok := sb.enter()
	if !ok || !sb.stream(ctx, cursor, first, caughtUp) {
		sb.finish()
	}
}

// Gauge counts what waits (a prometheus.Gauge fits).
type Gauge interface {
	Inc()
	Dec()
}

func (sb *sub) setUnfollow(f func(departed bool)) { sb.unfollow = f }

// stopFollow ends the subscription's follows, if any; departed says the
// connection really went away. Call it once the subscription has
// finished (wait).
func (sb *sub) stopFollow(departed bool) {
	sb.unfollowed.Do(func() {
		if sb.unfollow != nil {
			sb.unfollow(departed)
		}
	})
}

func newSub(s *Session, channel string) *sub {
	return &sub{s: s, channel: channel, started: s.now().UnixNano()}
}

// open finds where the subscription starts: after the given cursor, which
// the first read checks, or after the channel's latest message when after
// is absent. It uses the session's context, so an unsubscribe racing the
// subscribe still finds it answered.
func (sb *sub) open(after *string) (store.Cursor, *page, error) {
	st := sb.s.c.store
	if after == nil {
		b, err := st.Bounds(sb.s.ctx, sb.channel)
		return b.Latest, nil, err
	}
	p, err := sb.s.c.reads.read(sb.s.ctx, st, sb.channel, store.Cursor(*after), sb.s.c.cfg.ReadBatch, time.Time{})
	return store.Cursor(*after), p, err
}

// stream queues the channel's messages after cursor until the
// subscription ends or, caught up, parks (then it reports true: the
// goroutine is free to go, and the parking resumes the subscription when a
// message arrives). first is a page already read, if any; ctx is the
// run's (enter).
func (sb *sub) stream(ctx context.Context, cursor store.Cursor, first *page, caughtUp bool) (parked bool) {
	st, batch := sb.s.c.store, sb.s.c.cfg.ReadBatch
	p := first
	for {
		if p == nil {
			if caughtUp {
				sb.leave()
				return sb.s.c.parking.park(st, sb, cursor)
			}
			// Subscribers woken by the same append read after the same
			// cursor: they share one read and its encoded frames.
			var err error
			if p, err = sb.s.c.reads.read(ctx, st, sb.channel, cursor, batch, time.Time{}); err != nil {
				sb.fail(ctx, err)
				return false
			}
		}
		if err := sb.queue(ctx, cursor, p); err != nil {
			return false
		}
		cursor, caughtUp, p = p.res.Next, len(p.res.Messages) < batch, nil
	}
}

// queue queues a page's frames: a gap frame first if the page has a gap,
// then its messages, encoded once per Format for every subscriber.
func (sb *sub) queue(ctx context.Context, after store.Cursor, p *page) error {
	q, res := sb.s.q, &p.res
	if res.Gap {
		f := sb.s.f.Encode(wire.Gap{Type: wire.TypeGap, Channel: sb.channel, After: string(after), Earliest: string(res.Earliest)})
		it := item{frame: f, app: true, channel: sb.channel}
		if len(res.Messages) == 0 {
			// Retention took everything: once told, the client resumes
			// past the hole.
			it.cursor = res.Next
		}
		if err := q.pushMsg(ctx, sb, it); err != nil {
			return err
		}
	}
	frames := p.frames(sb.s.f)
	for i, m := range res.Messages {
		it := item{frame: frames[i], app: true, channel: sb.channel, cursor: m.ID, since: sb.lagClock(m)}
		if err := q.pushMsg(ctx, sb, it); err != nil {
			return err
		}
	}
	return nil
}

// lagClock is when m's lag clock starts: when it was appended, or when
// the subscription started for history older than that.
func (sb *sub) lagClock(m store.Message) time.Time {
	if m.Time.UnixNano() < sb.started {
		return time.Unix(0, sb.started)
	}
	return m.Time
}

// queueNow queues a page's message frames if the queue takes them all at
// once (queue.pushNow), and reports whether it did. The page has no gap.
func (sb *sub) queueNow(p *page) bool {
	frames := p.frames(sb.s.f)
	var buf [4]item
	its := buf[:0]
	for i, m := range p.res.Messages {
		its = append(its, item{frame: frames[i], app: true, channel: sb.channel, cursor: m.ID, since: sb.lagClock(m)})
	}
	return sb.s.q.pushNow(its)
}

// fail ends a subscription the store gave up on, telling the client in
// the channel's order, unless the subscription or session is ending (ctx,
// the run's, is done). A
// stream, which has no way to say so, ends.
func (sb *sub) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	code, msg := StoreCode(err)
	if code == wire.CodeInternal {
		sb.s.c.log.Error("subscription failed", "channel", sb.channel, "err", err)
	}
	f := sb.s.f.Encode(wire.ErrorFrame{Type: wire.TypeError, Code: code, Message: msg, Channel: sb.channel})
	if f != nil {
		sb.s.q.pushMsg(ctx, sb, item{frame: f, app: true, channel: sb.channel})
	}
	sb.s.removeSub(sb)
	sb.stopFollow(false)
	if sb.s.kind == stream {
		sb.s.decide(ending{reason: conn.ReasonClosed, mode: conn.CloseGraceful})
	}
}
