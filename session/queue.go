package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tether-run/tether/internal/latch"
	"github.com/tether-run/tether/store"
)

// errQueueClosed: the connection is ending; nothing more is queued.
var errQueueClosed = errors.New("tether: connection ending")

// item is one frame waiting to be written.
type item struct {
	frame []byte
	app   bool // application data (counts against the idle timeout)
	// For message and gap frames: the channel, and the cursor the client
	// has been delivered once the frame is written (empty for gaps).
	channel string
	cursor  store.Cursor
	since   time.Time // when the frame's lag clock started (message frames)
}

// lane is a FIFO of frames bounded in bytes.
type lane struct {
	items []item
	bytes int
}

func (l *lane) fits(n, limit int) bool { return l.bytes == 0 || l.bytes+n <= limit }

func (l *lane) push(it item) {
	l.items = append(l.items, it)
	l.bytes += len(it.frame)
}

func (l *lane) pop() item {
	it := l.items[0]
	l.items[0] = item{}
	l.items = l.items[1:]
	if len(l.items) == 0 {
		l.items = nil // an idle connection keeps no backing array
	}
	l.bytes -= len(it.frame)
	return it
}

// queue is a connection's outgoing queue: two lanes bounded in bytes, each
// to limit. The writer takes control frames first, so a reply is never
// stuck behind a backlog of messages. Within the message lane, frames of
// one channel stay in order.
//
// The writer runs only while something is queued: once enabled (enable),
// the push that finds no writer running starts one (the function enable
// was given, which starts a goroutine), and the writer exits when next
// finds the queue empty. An idle connection has no writer goroutine.
type queue struct {
	limit int
	// kick, when set, is called (with mu held; it must not block) when a
	// lag clock starts at since, so that the session's timer looks again
	// in time.
	kick func(since time.Time)

	mu      sync.Mutex
	closed  bool               // guarded by mu
	writer  bool               // guarded by mu; a writer runs or was started (next to mu, so that they pack)
	ctrl    lane               // guarded by mu
	msgs    lane               // guarded by mu
	space   chan struct{}      // guarded by mu; made by a push that waits for room, closed when room is made
	waiting map[*sub]time.Time // guarded by mu; subscriptions blocked on room, by lag clock; nil until one is
	writing time.Time          // guarded by mu; lag clock of the message frame being written
	// run starts a writer; nil until enable. Called with mu held: it
	// must not block (it starts a goroutine). Guarded by mu.
	run func()
	// stopped fires once the queue is closed and empty and no writer
	// runs: nothing more will be written (stoppedC). Guarded by mu.
	stopped latch.Latch
}

func newQueue(limit int) *queue {
	return &queue{limit: limit}
}

// stoppedC returns a channel closed once nothing more will be written:
// the queue is closed and drained and no writer runs.
func (q *queue) stoppedC() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stopped.Wait()
}

// enable lets pushes start the writer with run (which must start a
// goroutine and return), and starts it now if anything is queued or the
// queue was closed meanwhile.
func (q *queue) enable(run func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.run = run
	q.wakeLocked()
}

// wakeLocked starts a writer if there is work for one and none runs:
// frames to write, or a closed queue to report stopped. q.mu is held.
func (q *queue) wakeLocked() {
	if q.run == nil || q.writer || q.stopped.Fired() {
		return
	}
	if len(q.ctrl.items)+len(q.msgs.items) == 0 && !q.closed {
		return
	}
	q.writer = true
	q.run()
}

// roomLocked wakes the pushes waiting for room. q.mu is held.
func (q *queue) roomLocked() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// stopLocked fires stopped if the queue is closed and empty and no
// writer runs. q.mu is held.
func (q *queue) stopLocked() {
	if q.closed && !q.writer && len(q.ctrl.items)+len(q.msgs.items) == 0 {
		q.stopped.Fire()
	}
}

func (q *queue) kicked(since time.Time) {
	if q.kick != nil && !since.IsZero() {
		q.kick(since)
	}
}

// pushCtrl queues a control frame, waiting for room.
func (q *queue) pushCtrl(ctx context.Context, it item) error {
	return q.push(ctx, it, nil)
}

// forceCtrl queues a small control frame even past the bound: for frames
// that must not wait (a ping, the shutdown notice, the final error).
func (q *queue) forceCtrl(it item) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.ctrl.push(it)
	q.wakeLocked()
	return true
}

// tryCtrl queues a control frame only if it fits now (presence events):
// it never waits and never grows the lane past its bound.
func (q *queue) tryCtrl(it item) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || !q.ctrl.fits(len(it.frame), q.limit) {
		return false
	}
	q.ctrl.push(it)
	q.wakeLocked()
	return true
}

// pushMsg queues a message frame for s, waiting for room. While it waits,
// the frame's lag clock counts towards the slow-consumer check.
func (q *queue) pushMsg(ctx context.Context, s *sub, it item) error {
	return q.push(ctx, it, s)
}

func (q *queue) push(ctx context.Context, it item, s *sub) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := &q.ctrl
	if s != nil {
		l = &q.msgs
	}
	for !q.closed && !l.fits(len(it.frame), q.limit) {
		if s != nil && !it.since.IsZero() {
			if len(q.waiting) == 0 && len(q.msgs.items) == 0 {
				q.kicked(it.since)
			}
			if q.waiting == nil {
				q.waiting = map[*sub]time.Time{}
			}
			q.waiting[s] = it.since
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		var err error
		select {
		case <-space:
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		q.mu.Lock()
		delete(q.waiting, s)
		if err != nil {
			return err
		}
	}
	if q.closed {
		return errQueueClosed
	}
	if s != nil && len(q.msgs.items) == 0 && len(q.waiting) == 0 {
		q.kicked(it.since)
	}
	l.push(it)
	q.wakeLocked()
	return nil
}

// pushNow queues message frames only if all of them fit now and no
// subscription waits for room (which keeps the order in which room is
// given): it never waits. It reports whether it queued them.
func (q *queue) pushNow(its []item) bool {
	n := 0
	for _, it := range its {
		n += len(it.frame)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.waiting) > 0 || len(its) == 0 ||
		q.msgs.bytes+n > q.limit && !(q.msgs.bytes == 0 && len(its) == 1) {
		return false
	}
	if len(q.msgs.items) == 0 {
		q.kicked(its[0].since)
	}
	for _, it := range its {
		q.msgs.push(it)
	}
	q.wakeLocked()
	return true
}

// popState says what next found.
type popState uint8

const (
	popItem   popState = iota // a frame: the writer writes it and calls next again
	popEmpty                  // nothing queued: the writer has exited (the next push starts another)
	popClosed                 // closed and drained: nothing more will be written
)

// next takes the next frame for the writer, control first. When the
// queue is empty it calls idle, if not nil, without the lock, and looks
// again (the writer flushes there what it buffered: frames dropped after
// an unsubscribe may have taken away the frame it expected next); then it
// ends the writer's turn: popEmpty, or popClosed once the queue is closed.
// Only popItem leaves the caller the writer.
func (q *queue) next(idle func()) (it item, more bool, st popState) {
	for {
		q.mu.Lock()
		l := &q.ctrl
		if len(l.items) == 0 {
			l = &q.msgs
		}
		if len(l.items) > 0 {
			it = l.pop()
			q.writing = it.since
			q.roomLocked()
			more = len(q.ctrl.items)+len(q.msgs.items) > 0
			q.mu.Unlock()
			return it, more, popItem
		}
		if idle != nil {
			q.mu.Unlock()
			idle()
			idle = nil
			continue // look again: something may have come meanwhile
		}
		q.writer = false
		st = popEmpty
		if q.closed {
			q.stopLocked()
			st = popClosed
		}
		q.mu.Unlock()
		return item{}, false, st
	}
}

// quit ends the writer's turn after a failed write (the writer has closed
// the queue, discarding what it held).
func (q *queue) quit() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.writer = false
	q.stopLocked()
}

// written says the frame pop returned last has been written (or failed).
func (q *queue) written() {
	q.mu.Lock()
	q.writing = time.Time{}
	q.mu.Unlock()
}

// close stops queueing: blocked pushes fail, pop drains what is queued,
// unless discard drops it.
func (q *queue) close(discard bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.roomLocked()
	}
	if discard {
		q.ctrl, q.msgs = lane{}, lane{}
	}
	q.stopLocked()
	q.wakeLocked() // a writer drains what is left, or reports stopped
}

// dropMessages removes the queued message frames of channel (after an
// unsubscribe), or of every channel when channel is empty.
func (q *queue) dropMessages(channel string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.msgs.items[:0]
	q.msgs.bytes = 0
	for _, it := range q.msgs.items {
		if channel == "" || it.channel == channel {
			continue
		}
		kept = append(kept, it)
		q.msgs.bytes += len(it.frame)
	}
	clear(q.msgs.items[len(kept):])
	q.msgs.items = kept
	q.roomLocked()
	q.stopLocked()
}

// oldest returns the earliest lag clock among undelivered message frames:
// those queued and those a subscription waits to queue. Zero if none.
func (q *queue) oldest() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var t time.Time
	older := func(s time.Time) {
		if !s.IsZero() && (t.IsZero() || s.Before(t)) {
			t = s
		}
	}
	older(q.writing)
	for _, it := range q.msgs.items {
		older(it.since)
	}
	for _, s := range q.waiting {
		older(s)
	}
	return t
}
