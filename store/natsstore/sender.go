package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/tether-run/tether/store"
)

// A channel's sender.
//
// Each append names its predecessor, so a store's appends to one channel
// cannot be in flight side by side: the second would need the first's
// stream sequence before the stream has assigned it. Instead they queue,
// and one sender goroutine per busy channel sends all that wait as one
// JetStream atomic batch (nats-server 2.12 and later): the stream stores a
// batch whole or not at all, at consecutive sequences. Only the batch's
// first message names its predecessor (Tether-Prev and the expectation);
// each later one says Tether-Prev "=", the sequence just before its own.
// A batch costs the stream one Raft entry and one sync and the store one
// round trip, so a channel's rate grows with its publishers instead of
// being one round trip per append.

// maxBatchOps and maxBatchBytes bound one batch (the server's default limit
// is 1,000 messages).
const (
	maxBatchOps   = 256
	maxBatchBytes = 1 << 20
)

// JetStream error codes of atomic batches (nats-server 2.15).
const (
	codeBatchDuplicate       jetstream.ErrorCode = 10201 // "atomic publish batch contains duplicate message id"
	codeBatchIncomplete      jetstream.ErrorCode = 10176 // "atomic publish batch is incomplete"
	codeBatchTooManyInflight jetstream.ErrorCode = 10210 // "atomic publish too many inflight"
)

// Atomic batch headers (nats-server's names).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// enqueue queues a behind its channel's sender, starting one if none runs.
// The caller holds life read-locked, so Close waits for the start.
func (s *Store) enqueue(a *appendOp) {
	s.mu.Lock()
	c := s.entryLocked(a.channel, true) // in the same lock: not evicted before it sends
	c.appended = time.Now()
	c.queue = append(c.queue, a)
	start := !c.sending
	c.sending = true
	s.mu.Unlock()
	if start {
		s.senders.Add(1)
		go s.runSender(c)
	}
}

// runSender sends c's queued appends, a batch at a time, until the queue is
// empty. It runs in its own goroutine, started by enqueue and counted in
// s.senders; Close cancels sendCtx and waits for it.
func (s *Store) runSender(c *channel) {
	defer s.senders.Done()
	for {
		ops := s.nextBatch(c)
		switch len(ops) {
		case 0:
			return
		case 1:
			s.sendOne(c, ops[0])
		default:
			s.sendBatch(c, ops)
		}
	}
}

// nextBatch takes what to send next from c's queue: a conditional append
// alone, else as many unconditional ones as a batch holds. Appends whose
// callers gave up are dropped unsent. An empty answer ends the sender.
//
// Only a replicated stream gets batches: a single server stages each atomic
// batch in a file store of its own, synced, which costs more than the
// batch saves (measured in docs/benchmarks.md), so there the appends go
// one at a time.
func (s *Store) nextBatch(c *channel) []*appendOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if len(c.queue) == 0 {
			c.queue, c.sending = nil, false
			return nil
		}
		n, size := 1, len(c.queue[0].data)
		if !c.queue[0].conditional && s.clustered {
			for n < len(c.queue) && n < maxBatchOps && !c.queue[n].conditional &&
				size+len(c.queue[n].data) <= maxBatchBytes {
				size += len(c.queue[n].data)
				n++
			}
		}
		ops := make([]*appendOp, 0, n)
		for _, a := range c.queue[:n] {
			if a.ctx.Err() == nil {
				ops = append(ops, a)
			}
		}
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		if len(ops) > 0 {
			return ops
		}
	}
}

// sendOne sends one append on its own.
func (s *Store) sendOne(c *channel, a *appendOp) {
	if !a.conditional {
		s.mu.Lock()
		a.prev = c.last
		s.mu.Unlock()
	}
	a.now, a.unsure = time.Now(), false
	a.deliver(s.send(a.ctx, a, a.conditional))
}

// sendBatch sends ops, two or more unconditional appends to one channel, as
// one atomic batch until the stream stores it or it fails, and answers
// each. The retries are those of send: another store's append came first
// (the batch names the new predecessor), no leader (an election), a try
// that timed out (sent again unchanged, and recognised by its first
// message's nonce if an earlier try stored it). A batch with an
// idempotency key the stream has seen is refused whole; its appends are
// then sent one by one, so that each duplicate is answered as such.
func (s *Store) sendBatch(c *channel, ops []*appendOp) {
	ctx, cancel := context.WithDeadline(s.sendCtx, latestDeadline(ops))
	defer cancel()
	s.mu.Lock()
	prev := c.last
	s.mu.Unlock()
	stamp(ops)
	s.resend(ctx, c, ops, prev, false)
}

// resend is sendBatch's loop; unsure reports that a try of ops naming prev
// may have been stored already.
func (s *Store) resend(ctx context.Context, c *channel, ops []*appendOp, prev uint64, unsure bool) {
	for attempt := 1; ; attempt++ {
		if !unsure {
			// Nothing of ops is stored: those whose callers left need not be.
			if ops = liveOps(ops); len(ops) < 2 {
				for _, a := range ops {
					s.sendOne(c, a)
				}
				return
			}
		}
		last, err := s.publishBatch(ctx, ops, prev)
		if err == nil {
			s.batchStored(ops, prev, last+1-uint64(len(ops)))
			return
		}
		if ctx.Err() != nil {
			fail(ops, s.mapErr(ctx, err))
			return
		}
		switch {
		case isNoSpace(err):
			s.full.noSpace(err)
			fail(ops, fmt.Errorf("%w: %w", store.ErrNoSpace, err))
			return
		case isAPIError(err, codeWrongLastSeq), isAPIError(err, codeWrongLastSeqConst),
			isAPIError(err, codeBatchDuplicate):
			if unsure {
				// An earlier try timed out: it may be what follows prev.
				ops[0].prev = prev
				m, o, lerr := s.landed(ctx, ops[0])
				if lerr != nil {
					fail(ops, s.mapErr(ctx, lerr))
					return
				}
				if o == landedOurs {
					s.batchStored(ops, prev, m.seq)
					return
				}
				if o == landedNotYet {
					break // the same batch again, later: still unsure
				}
				unsure = false
			}
			if isAPIError(err, codeBatchDuplicate) {
				for _, a := range ops {
					s.sendOne(c, a)
				}
				return
			}
			if prev, err = s.newPrev(ctx, ops[0].channel, ops[0].subject, err); err != nil {
				fail(ops, s.mapErr(ctx, err))
				return
			}
			stamp(ops)
		case isAPIError(err, codeDupInProcess), isAPIError(err, codeBatchIncomplete),
			isAPIError(err, codeBatchTooManyInflight):
			// Nothing stored by this try: a key of the batch is being
			// stored by another store, or the stream lost part of the batch
			// (a new leader), or has too many batches open.
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			unsure = true
		case leaderless(err):
			// No stream leader right now: nothing stored.
		default:
			fail(ops, s.mapErr(ctx, err))
			return
		}
		if attempt == maxAttempts || !unsure && len(liveOps(ops)) == 0 {
			fail(ops, s.mapErr(ctx, err))
			return
		}
		if berr := s.backoff(ctx, attempt); berr != nil {
			fail(ops, berr)
			return
		}
	}
}

// publishBatch sends ops as one atomic batch naming prev and waits for the
// stream's acknowledgement of the commit, or for tryTimeout. It returns the
// sequence of the batch's last message.
func (s *Store) publishBatch(ctx context.Context, ops []*appendOp, prev uint64) (uint64, error) {
	id := nuid.Next()
	for i, a := range ops {
		m := a.message()
		if i == 0 {
			p := strconv.FormatUint(prev, 10)
			m.Header.Set(hdrPrev, p)
			m.Header.Set(hdrExpectedSubjSeq, p)
		} else {
			m.Header.Set(hdrPrev, prevAdjacent)
		}
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < len(ops)-1 {
			// Staged by the leader; only the commit is answered.
			if err := s.nc.PublishMsg(m); err != nil {
				return 0, err
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		tctx, cancel := context.WithTimeout(ctx, tryTimeout)
		defer cancel()
		resp, err := s.nc.RequestMsgWithContext(tctx, m)
		if err != nil {
			return 0, err
		}
		var ack struct {
			Error *jetstream.APIError `json:"error"`
			Seq   uint64              `json:"seq"`
			Batch string              `json:"batch"`
			Count int                 `json:"count"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return 0, fmt.Errorf("batch acknowledgement: %w", err)
		}
		if ack.Error != nil {
			return 0, ack.Error
		}
		if ack.Batch != id || ack.Count != len(ops) || ack.Seq < uint64(len(ops)) {
			return 0, fmt.Errorf("batch acknowledgement %+v; want batch %s of %d", ack, id, len(ops))
		}
		return ack.Seq, nil
	}
	return 0, errors.New("empty batch")
}

// batchStored answers ops, stored at consecutive sequences from first
// after prev.
func (s *Store) batchStored(ops []*appendOp, prev, first uint64) {
	s.full.appended()
	s.batches.Add(1)
	msgs := make([]stored, len(ops))
	for i, a := range ops {
		a.prev = prev
		msgs[i] = a.stored(first + uint64(i))
		prev = msgs[i].seq
	}
	s.observeStored(ops[0].channel, true, msgs...)
	for i, a := range ops {
		a.deliver(store.AppendResult{ID: formatCursor(first + uint64(i)), Time: a.now}, nil)
	}
}

// message is a's message, without the headers that place it (Tether-Prev
// and the expectation).
func (a *appendOp) message() *nats.Msg {
	m := nats.NewMsg(a.subject)
	m.Data = a.data
	m.Header.Set(hdrTime, strconv.FormatInt(a.now.UnixNano(), 10))
	m.Header.Set(hdrNonce, a.nonce)
	if a.id != "" {
		m.Header.Set(hdrMsgID, a.id)
	}
	return m
}

// stamp sets the accept time of a batch about to be sent afresh.
func stamp(ops []*appendOp) {
	now := time.Now()
	for _, a := range ops {
		a.now, a.unsure = now, false
	}
}

// liveOps returns the appends of ops whose callers still wait.
func liveOps(ops []*appendOp) []*appendOp {
	live := ops[:0:0]
	for _, a := range ops {
		if a.ctx.Err() == nil {
			live = append(live, a)
		}
	}
	return live
}

// latestDeadline is the latest of the appends' deadlines (opCtx gives each
// one): a batch is tried for as long as one of its callers waits.
func latestDeadline(ops []*appendOp) time.Time {
	var d time.Time
	for _, a := range ops {
		if ad, ok := a.ctx.Deadline(); ok && ad.After(d) {
			d = ad
		}
	}
	return d
}

func fail(ops []*appendOp, err error) {
	for _, a := range ops {
		a.deliver(store.AppendResult{}, err)
	}
}
