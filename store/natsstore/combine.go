package natsstore

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
)

// Appends to different channels, combined.
//
// A channel's sender batches that channel's appends (sender.go), but with
// one publisher per channel each batch holds one append, and 64 channels
// cost the stream 64 Raft entries, 64 syncs and 64 acknowledgements. So on
// a replicated stream the senders hand their batches (groups) to one
// combiner, which sends every group waiting at that moment as one atomic
// batch: each group's messages consecutive, its first naming the channel's
// predecessor in Tether-Prev and the expectation (nats-server checks a
// per-subject expectation on the first message of each subject in a
// batch), the rest "=". While it is in flight the next groups gather.
//
// The stream stores the combined batch whole or not at all. Stored, every
// group is answered. Refused (another store appended to one of the
// channels, a duplicate idempotency key, no space...), nothing is stored,
// and each group goes back to its sender, which sends it alone by the
// rules of sender.go: the refusal was perhaps another group's. Timed out,
// each group is unsure, and its sender resends it alone naming the same
// predecessor, which recognises a landed try by its nonce (landed). A
// group alone at its turn goes back to its sender at once, so that a lone
// append is the ordinary publish it was.

// A group is one channel's appends submitted to the combiner.
type group struct {
	c    *channel
	ops  []*appendOp
	prev uint64       // the channel's predecessor the group names
	done chan outcome // buffered; the combiner's answer
}

// outcome is the combiner's answer for a group.
type outcome int

const (
	sendAlone       outcome = iota // not sent: the sender sends the group itself
	combinedStored                 // stored, and every append answered
	combinedRefused                // refused: nothing of it is stored
	combinedUnsure                 // the try timed out: it may be stored
)

// combiner gathers groups while a combined batch is in flight. One in
// flight at a time: two or more (measured up to 8) split the same appends
// into smaller batches and were no faster.
type combiner struct {
	mu      sync.Mutex
	waiting []*group // guarded by mu
	running bool     // a runCombiner goroutine owns the sending; guarded by mu
}

// sendGroup sends ops, unconditional appends to c on a replicated stream,
// through the combiner, and resends them alone if the combined batch
// failed.
func (s *Store) sendGroup(c *channel, ops []*appendOp) {
	s.mu.Lock()
	g := &group{c: c, ops: ops, prev: c.last, done: make(chan outcome, 1)}
	s.mu.Unlock()
	k := &s.comb
	k.mu.Lock()
	k.waiting = append(k.waiting, g)
	if !k.running {
		k.running = true
		s.senders.Add(1) // the caller's sender is counted: Close waits for both
		go s.runCombiner()
	}
	k.mu.Unlock()

	o := <-g.done
	switch {
	case o == combinedStored:
	case o == sendAlone && len(ops) == 1:
		s.sendOne(c, ops[0])
	case o == sendAlone:
		s.sendBatch(c, ops)
	case len(ops) == 1:
		a := ops[0]
		a.prev, a.unsure = g.prev, o == combinedUnsure
		if !a.unsure {
			s.sendOne(c, a) // names the channel's newest known predecessor
			return
		}
		a.deliver(s.send(a.ctx, a, false))
	default:
		ctx, cancel := context.WithDeadline(s.sendCtx, latestDeadline(ops))
		defer cancel()
		s.resend(ctx, c, ops, g.prev, o == combinedUnsure)
	}
}

// runCombiner sends the waiting groups, all that one batch holds at a
// time, until none wait. It runs in its own goroutine, counted in
// s.senders.
func (s *Store) runCombiner() {
	defer s.senders.Done()
	for {
		gs := s.takeGroups()
		switch len(gs) {
		case 0:
			return
		case 1:
			gs[0].done <- sendAlone
		default:
			s.sendCombined(gs)
		}
	}
}

// takeGroups takes the oldest waiting groups that fit in one batch; none
// ends the combiner.
func (s *Store) takeGroups() []*group {
	k := &s.comb
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.waiting) == 0 {
		k.waiting, k.running = nil, false
		return nil
	}
	n, ops, size := 0, 0, 0
	for _, g := range k.waiting {
		gsize := 0
		for _, a := range g.ops {
			gsize += len(a.data)
		}
		if n > 0 && (ops+len(g.ops) > maxBatchOps || size+gsize > maxBatchBytes) {
			break
		}
		n, ops, size = n+1, ops+len(g.ops), size+gsize
	}
	gs := append([]*group(nil), k.waiting[:n]...)
	clear(k.waiting[:n])
	k.waiting = k.waiting[n:]
	return gs
}

// sendCombined sends gs as one atomic batch, once, and answers each
// group.
func (s *Store) sendCombined(gs []*group) {
	var all []*appendOp
	parts := make([]batchPart, len(gs))
	for i, g := range gs {
		all = append(all, g.ops...)
		parts[i] = batchPart{ops: g.ops, prev: g.prev}
	}
	ctx, cancel := context.WithDeadline(s.sendCtx, latestDeadline(all))
	defer cancel()
	stamp(all)
	last, err := s.publishBatch(ctx, parts...)
	if err == nil {
		s.combined.Add(1)
		first := last + 1 - uint64(len(all))
		for _, g := range gs {
			s.batchStored(g.ops, g.prev, first)
			first += uint64(len(g.ops))
			g.done <- combinedStored
		}
		return
	}
	o := combinedRefused
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		o = combinedUnsure
	}
	if isNoSpace(err) {
		s.full.noSpace(err)
	}
	for _, g := range gs {
		g.done <- o
	}
}
