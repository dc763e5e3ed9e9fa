package session

import (
	"context"
	"sync"
	"time"

	"github.com/tether-run/tether/store"
)

// parking lets caught-up subscriptions wait for their channel without a
// goroutine each. The subscriptions of a channel parked at the same
// cursor (after a fan-out, all of them) form one group, which waits with
// one store.Wait on one goroutine; when a message arrives, that goroutine
// reads the page once, queues it for every subscription whose queue has
// room and parks them again at the next cursor (deliver); any other is
// resumed on a fresh goroutine that reads and queues, and parks again
// once caught up. An idle subscriber thus costs a map entry, not a
// goroutine, and an append wakes one waiter per channel instead of one
// per subscriber.
//
// Ownership: whoever takes a subscription out of its group under mu (the
// group's waker, or the subscription's cancellation) is the one that
// carries it on (resumes it) or finishes it.
type parking struct {
	mu     sync.Mutex
	groups map[parkKey]*parkGroup // guarded by mu
}

type parkKey struct {
	channel string
	after   store.Cursor
}

// parkGroup is the subscriptions and long-polls of a channel parked at
// one cursor, and the goroutine waiting for a message after it.
type parkGroup struct {
	key    parkKey
	subs   map[*sub]struct{}      // guarded by parking.mu
	polls  map[*PollWait]struct{} // guarded by parking.mu; nil until a long-poll parks here
	ctx    context.Context        // ends when the group has emptied
	cancel context.CancelFunc
}

// empty reports whether nothing is parked in g. parking.mu is held.
func (g *parkGroup) empty() bool { return len(g.subs) == 0 && len(g.polls) == 0 }

// park parks sb at cursor. It reports false when sb is ending: the caller
// finishes it.
func (p *parking) park(st store.Store, sb *sub, cursor store.Cursor) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parkLocked(st, sb, cursor)
}

func (p *parking) parkLocked(st store.Store, sb *sub, cursor store.Cursor) bool {
	// A subscription's end (sub.stop, then sub.end's remove) sets stopped
	// before it takes mu: either it is seen here, or the end finds sb
	// parked and finishes it.
	if sb.isStopped() || sb.s.ctx.Err() != nil {
		return false
	}
	g := p.groupLocked(st, parkKey{sb.channel, cursor})
	sb.parkedIn = g
	if sb.waiting != nil {
		sb.waiting.Inc()
	}
	g.subs[sb] = struct{}{}
	return true
}

// groupLocked returns the group parked at k, made (and its wait started)
// if there is none. p.mu is held.
func (p *parking) groupLocked(st store.Store, k parkKey) *parkGroup {
	if p.groups == nil {
		p.groups = map[parkKey]*parkGroup{}
	}
	g := p.groups[k]
	if g == nil {
		g = &parkGroup{key: k, subs: map[*sub]struct{}{}}
		g.ctx, g.cancel = context.WithCancel(context.Background())
		p.groups[k] = g
		go p.wait(st, g) // owned by the group: it returns once the group woke or emptied
	}
	return g
}

// leftLocked forgets g once nothing is parked in it, which ends its
// wait. p.mu is held.
func (p *parking) leftLocked(g *parkGroup) {
	if !g.empty() {
		return
	}
	if p.groups[g.key] == g {
		delete(p.groups, g.key)
	}
	g.cancel()
}

// remove takes sb out of its group, if it is parked; the caller then owns
// it.
func (p *parking) remove(sb *sub) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := sb.parkedIn
	if g == nil {
		return false
	}
	delete(g.subs, sb)
	sb.parkedIn = nil
	if sb.waiting != nil {
		sb.waiting.Dec()
	}
	p.leftLocked(g)
	return true
}

// wait is a group's goroutine: it waits for a message after the group's
// cursor, then resumes every subscription still parked in it (or, when
// the store failed, lets each report the failure) and wakes its
// long-polls.
func (p *parking) wait(st store.Store, g *parkGroup) {
	err := st.Wait(g.ctx, g.key.channel, g.key.after)
	p.mu.Lock()
	if p.groups[g.key] == g {
		delete(p.groups, g.key)
	}
	subs := make([]*sub, 0, len(g.subs))
	for sb := range g.subs {
		sb.parkedIn = nil
		if sb.waiting != nil {
			sb.waiting.Dec()
		}
		subs = append(subs, sb)
	}
	clear(g.subs)
	polls := p.takePollsLocked(g)
	p.mu.Unlock()
	g.cancel()
	for _, pp := range polls {
		go pp.wake(err) // a goroutine only while it reads and answers
	}
	if err == nil && len(subs) > 0 {
		subs = p.deliver(st, g.key, subs)
	}
	for _, sb := range subs {
		sb.resume(g.key.after, err)
	}
}

// deliver is the common case of a wake-up, done on the group's goroutine:
// one shared read of the page after the group's cursor; every
// subscription whose queue takes the whole page at once, with nobody
// waiting for room, gets it queued and is parked again after it, with no
// goroutine of its own. It returns the subscriptions it did not carry on
// (the page has a gap, is full, or their queue is short of room; or the
// read failed), whose own goroutines then do it the long way.
func (p *parking) deliver(st store.Store, k parkKey, subs []*sub) (rest []*sub) {
	c, batch := subs[0].s.c, subs[0].s.c.cfg.ReadBatch
	pg, err := c.reads.read(context.Background(), st, k.channel, k.after, batch, time.Time{})
	if err != nil || pg.res.Gap || len(pg.res.Messages) == 0 || len(pg.res.Messages) >= batch {
		return subs
	}
	var again []*sub
	rest = subs[:0]
	for _, sb := range subs { // rest reuses subs: it never gets ahead of the loop
		if !sb.isStopped() && sb.queueNow(pg) {
			again = append(again, sb)
		} else {
			rest = append(rest, sb)
		}
	}
	p.parkAll(st, again, pg.res.Next)
	return rest
}

// parkAll parks subs at cursor under one lock, and finishes those ending.
func (p *parking) parkAll(st store.Store, subs []*sub, cursor store.Cursor) {
	var ending []*sub
	p.mu.Lock()
	for _, sb := range subs {
		if !p.parkLocked(st, sb, cursor) {
			ending = append(ending, sb)
		}
	}
	p.mu.Unlock()
	for _, sb := range ending {
		sb.finish()
	}
}
