package protocol

import (
	"context"
	"sync"
	"time"

	"github.com/tether-run/tether/store"
)

// sub is one subscription: a goroutine reading its channel from the store
// at its own cursor (Read, then Wait when caught up) and queueing message
// frames. When the queue is full it waits, and so stops reading: the log
// is the buffer, nothing is dropped.
type sub struct {
	s       *session
	channel string
	ctx     context.Context // ends on unsubscribe or when the session ends
	cancel  context.CancelFunc
	done    chan struct{} // closed when the goroutine has exited
	started time.Time     // the lag clock of history starts here

	// unfollow ends the job follow of a job channel's subscription (nil
	// otherwise). Set by the subscription's goroutine before done is
	// closed; called once, by stopFollow.
	unfollow   func(departed bool)
	unfollowed sync.Once
}

// stopFollow ends the subscription's job follow, if any; departed says the
// connection really went away. Call it after done is closed.
func (sb *sub) stopFollow(departed bool) {
	sb.unfollowed.Do(func() {
		if sb.unfollow != nil {
			sb.unfollow(departed)
		}
	})
}

func newSub(s *session, channel string) *sub {
	ctx, cancel := context.WithCancel(s.ctx)
	return &sub{s: s, channel: channel, ctx: ctx, cancel: cancel, done: make(chan struct{}), started: s.now()}
}

// open finds where the subscription starts: after the given cursor, which
// the first read checks, or after the channel's latest message when after
// is absent. It uses the session's context, so an unsubscribe racing the
// subscribe still finds it answered.
func (sb *sub) open(after *string) (store.Cursor, *store.ReadResult, error) {
	st := sb.s.cfg.Store
	if after == nil {
		b, err := st.Bounds(sb.s.ctx, sb.channel)
		return b.Latest, nil, err
	}
	res, err := st.Read(sb.s.ctx, sb.channel, store.Cursor(*after), sb.s.cfg.ReadBatch)
	return store.Cursor(*after), &res, err
}

// stream queues the channel's messages after cursor until the
// subscription ends. first is a page already read, if any.
func (sb *sub) stream(cursor store.Cursor, first *store.ReadResult) {
	defer sb.cancel()
	st, batch := sb.s.cfg.Store, sb.s.cfg.ReadBatch
	res, caughtUp := first, false
	var frames [][]byte
	for {
		if res == nil {
			if caughtUp {
				if err := st.Wait(sb.ctx, sb.channel, cursor); err != nil {
					sb.fail(err)
					return
				}
			}
			// Subscribers woken by the same append read after the same
			// cursor: they share one read and its encoded frames.
			p, err := sb.s.e.reads.read(sb.ctx, st, sb.channel, cursor, batch)
			if err != nil {
				sb.fail(err)
				return
			}
			res, frames = &p.res, p.frames
		}
		if err := sb.queue(cursor, res, frames); err != nil {
			return
		}
		cursor, caughtUp, res, frames = res.Next, len(res.Messages) < batch, nil, nil
	}
}

// queue queues a page's frames: a gap frame first if the page has a gap,
// then its messages, from frames (encoded already, shared) when not nil.
func (sb *sub) queue(after store.Cursor, res *store.ReadResult, frames [][]byte) error {
	q := sb.s.q
	if res.Gap {
		f := encode(gapFrame{Type: TypeGap, Channel: sb.channel, After: string(after), Earliest: string(res.Earliest)})
		it := item{frame: f, app: true, channel: sb.channel}
		if len(res.Messages) == 0 {
			// Retention took everything: once told, the client resumes
			// past the hole.
			it.cursor = res.Next
		}
		if err := q.pushMsg(sb.ctx, sb, it); err != nil {
			return err
		}
	}
	if frames == nil {
		frames = encodeMessages(sb.channel, res.Messages)
	}
	for i, m := range res.Messages {
		f := frames[i]
		since := m.Time
		if since.Before(sb.started) {
			since = sb.started
		}
		it := item{frame: f, app: true, channel: sb.channel, cursor: m.ID, since: since}
		if err := q.pushMsg(sb.ctx, sb, it); err != nil {
			return err
		}
	}
	return nil
}

// fail ends a subscription the store gave up on, telling the client in
// the channel's order, unless the subscription or session is ending.
func (sb *sub) fail(err error) {
	if sb.ctx.Err() != nil {
		return
	}
	code, msg := storeCode(err)
	if code == CodeInternal {
		sb.s.cfg.Logger.Error("subscription failed", "channel", sb.channel, "err", err)
	}
	f := encode(errorFrame{Type: TypeError, Code: code, Message: msg, Channel: sb.channel})
	sb.s.q.pushMsg(sb.ctx, sb, item{frame: f, app: true, channel: sb.channel})
	sb.s.removeSub(sb)
	sb.stopFollow(false)
}
