package natsstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/tether-run/tether/store"
)

// JetStream error codes the append path acts on (nats-server's
// jetstream_errors_generated.go).
const (
	codeWrongLastSeq      jetstream.ErrorCode = 10071 // "wrong last sequence: {seq}"
	codeWrongLastSeqConst jetstream.ErrorCode = 10164 // the same, replicated streams, no seq
	codeWrongLastMsgID    jetstream.ErrorCode = 10070 // "wrong last msg ID: {id}"
	codeDupInProcess      jetstream.ErrorCode = 10158 // "duplicate message id is in process"
)

// maxAttempts bounds how often one append retries after losing a race for
// its channel's next position to another store.
const maxAttempts = 1000

// Append implements store.Store.
//
// Every message names the channel's previous message: in Tether-Prev, for
// readers to detect gaps, and (the first of each batch) in
// Nats-Expected-Last-Subject-Sequence, so that the stream refuses it if
// another store's append got there first. This store's appends to one
// channel queue up in order behind the channel's sender (sender.go), which
// sends all that are waiting as one atomic batch; an append that loses to
// another store learns the new predecessor from the refusal and tries
// again. A conditional append (ExpectLatest) is sent on its own, names the
// expected cursor, and does not retry: the refusal is store.ErrConflict.
func (s *Store) Append(ctx context.Context, channel string, data []byte, opts store.AppendOptions) (store.AppendResult, error) {
	if !store.ValidChannel(channel) {
		return store.AppendResult{}, store.ErrBadChannel
	}
	conditional := opts.ExpectLatest != ""
	expect, ok := parseCursor(opts.ExpectLatest)
	if conditional && !ok {
		return store.AppendResult{}, store.ErrBadCursor
	}
	if ctx.Err() != nil {
		return store.AppendResult{}, context.Cause(ctx)
	}
	done, err := s.use()
	if err != nil {
		return store.AppendResult{}, err
	}
	defer done()
	ctx, cancel := opCtx(ctx)
	defer cancel()

	a := &appendOp{
		ctx:         ctx,
		channel:     channel,
		subject:     channelSubject(s.prefix, channel),
		data:        data,
		nonce:       nuid.Next(),
		prev:        expect,
		conditional: conditional,
		result:      make(chan appendResult, 1),
	}
	if opts.IdempotencyKey != "" {
		a.id = msgID(channel, opts.IdempotencyKey)
	}
	s.enqueue(a)
	select {
	case r := <-a.result:
		return r.res, r.err
	case <-ctx.Done():
		return store.AppendResult{}, context.Cause(ctx)
	}
}

// send publishes a's message alone until the stream stores it, refuses a
// conditional append, or fails. The caller is the channel's sender.
func (s *Store) send(ctx context.Context, a *appendOp, conditional bool) (store.AppendResult, error) {
	for attempt := 1; ; attempt++ {
		ack, err := s.publish(ctx, a)
		if err == nil {
			return s.acked(ctx, a, ack)
		}
		if ctx.Err() != nil {
			return store.AppendResult{}, context.Cause(ctx)
		}
		switch {
		case isNoSpace(err):
			// Refused, nothing stored: answered at once, not retried.
			s.full.noSpace(err)
			return store.AppendResult{}, fmt.Errorf("%w: %w", store.ErrNoSpace, err)
		case isAPIError(err, codeWrongLastSeq), isAPIError(err, codeWrongLastSeqConst):
			if a.unsure {
				// An earlier try timed out: the message after prev may be it.
				m, o, lerr := s.landed(ctx, a)
				if lerr != nil {
					return store.AppendResult{}, s.mapErr(ctx, lerr)
				}
				if o == landedOurs {
					s.observe(a.channel, m.seq, true)
					return store.AppendResult{ID: formatCursor(m.seq), Time: a.now}, nil
				}
				if o == landedNotYet {
					break // the same message again, later: still unsure
				}
			}
			if conditional {
				return s.conflict(ctx, a)
			}
			if a.prev, err = s.newPrev(ctx, a.channel, a.subject, err); err != nil {
				return store.AppendResult{}, s.mapErr(ctx, err)
			}
			a.now, a.unsure = time.Now(), false
		case isAPIError(err, codeDupInProcess):
			// Another store's append with this key is being replicated;
			// the next try finds it done and answers its duplicate.
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			// The try's own timeout: the message may or may not be stored.
			// The same message, naming the same predecessor, is sent again;
			// it cannot be stored twice, because only one message can follow
			// prev, and landed recognises it by its nonce.
			a.unsure = true
		case leaderless(err):
			// No stream leader right now (an election): nothing was stored.
		default:
			return store.AppendResult{}, s.mapErr(ctx, err)
		}
		if attempt == maxAttempts {
			return store.AppendResult{}, s.mapErr(ctx, err)
		}
		if err := s.backoff(ctx, attempt); err != nil {
			return store.AppendResult{}, err
		}
	}
}

// appendOp is one Append on its way to the stream.
type appendOp struct {
	// ctx is the caller's (bounded by opCtx): once it ends, nobody waits
	// for the result, and a sender drops the append unless a try that may
	// have stored it is unresolved.
	ctx              context.Context
	conditional      bool
	result           chan appendResult // buffered: the sender never blocks on it
	channel, subject string
	data             []byte
	id               string // Nats-Msg-Id, empty without an idempotency key
	// nonce identifies this append's message, so that a try that timed out
	// can be recognised in the stream.
	nonce string
	// prev is the predecessor the message names; now its accept time. Both
	// change only when the stream refused the message.
	prev uint64
	now  time.Time
	// unsure is set when a try with this prev timed out: the message may
	// be stored.
	unsure bool
}

// stored is a's message as the stream stored it at seq, for the tail: its
// data is copied, since the caller may reuse its buffer once Append returns.
func (a *appendOp) stored(seq uint64) stored {
	return stored{subject: a.subject, seq: seq, prev: a.prev, nonce: a.nonce, time: a.now, data: append([]byte{}, a.data...)}
}

// appendResult is what a sender answers an Append.
type appendResult struct {
	res store.AppendResult
	err error
}

func (a *appendOp) deliver(res store.AppendResult, err error) {
	a.result <- appendResult{res, err}
}

// landing is what became of an append whose try timed out, once the stream
// refused a later try because prev is no longer the channel's newest.
type landing int

const (
	// landedNotYet: no message follows prev yet. The refusal came from a
	// message still being replicated, which may be the timed-out try: it
	// may yet be stored, so the append must not move on to a new
	// predecessor (it would then be stored twice). It sends the same
	// message again, later.
	landedNotYet landing = iota
	// landedOurs: the message after prev is the append's own.
	landedOurs
	// landedTheirs: another message follows prev, so the timed-out try can
	// never be stored (only one message can follow prev).
	landedTheirs
)

// landed tells what became of a's timed-out try, from the channel's
// message after a.prev as the leader has it.
func (s *Store) landed(ctx context.Context, a *appendOp) (stored, landing, error) {
	m, err := s.leaderGet(ctx, getRequest{Seq: a.prev + 1, NextFor: a.subject})
	switch {
	case errors.Is(err, errNoMessage):
		return stored{}, landedNotYet, nil
	case err != nil:
		return stored{}, landedNotYet, err
	case m.nonce == a.nonce:
		return m, landedOurs, nil
	}
	return m, landedTheirs, nil
}

// publish sends a's message once and waits for the stream's
// acknowledgement, which comes once the message is stored at the stream's
// replicas, or for tryTimeout.
func (s *Store) publish(ctx context.Context, a *appendOp) (*jetstream.PubAck, error) {
	m := a.message()
	p := strconv.FormatUint(a.prev, 10)
	m.Header.Set(hdrPrev, p)
	m.Header.Set(hdrExpectedSubjSeq, p)
	ctx, cancel := context.WithTimeout(ctx, tryTimeout)
	defer cancel()
	return s.js.PublishMsg(ctx, m, jetstream.WithRetryAttempts(0))
}

// tryTimeout bounds one try of an append: a request lost in a failover is
// sent again after it rather than waited on for the caller's whole ctx.
const tryTimeout = 2 * time.Second

// acked turns an acknowledgement into the append's result. A duplicate's
// Time is the original message's, read back from the stream; it is zero if
// retention has removed that message. A "duplicate" that is a's own
// message, stored by a try that timed out, is no duplicate.
func (s *Store) acked(ctx context.Context, a *appendOp, ack *jetstream.PubAck) (store.AppendResult, error) {
	s.full.appended()
	res := store.AppendResult{ID: formatCursor(ack.Sequence), Time: a.now}
	if ack.Duplicate {
		m, err := s.leaderGet(ctx, getRequest{Seq: ack.Sequence})
		switch {
		case err == nil:
			res.Time, res.Duplicate = m.time, m.nonce != a.nonce
		case errors.Is(err, errNoMessage):
			res.Time, res.Duplicate = time.Time{}, true
		default:
			return store.AppendResult{}, s.mapErr(ctx, err)
		}
	}
	if res.Duplicate {
		s.observe(a.channel, ack.Sequence, true)
	} else {
		s.observeStored(a.channel, true, a.stored(ack.Sequence))
	}
	return res, nil
}

// newPrev returns the predecessor to name after the stream refused the
// last one: the sequence the refusal names, or else the leader's Latest.
func (s *Store) newPrev(ctx context.Context, channel, subject string, refusal error) (uint64, error) {
	var seq uint64
	var apiErr *jetstream.APIError
	if isAPIError(refusal, codeWrongLastSeq) && asAPIError(refusal, &apiErr) {
		if n, ok := strings.CutPrefix(apiErr.Description, "wrong last sequence: "); ok {
			if v, err := strconv.ParseUint(n, 10, 64); err == nil {
				seq = v
				s.observe(channel, seq, true)
				return seq, nil
			}
		}
	}
	seq, err := s.latest(ctx, subject)
	if err != nil {
		return 0, err
	}
	s.observe(channel, seq, true)
	return seq, nil
}

// conflict answers a conditional append that the stream refused. The seam
// answers a duplicate idempotency key before it checks the expectation; a
// JetStream cluster does too, but a single server checks the expectation
// first (nats-server 2.15, processJetStreamMsg). There, an append with a key
// asks once more with the key alone and an expectation that cannot hold
// (Nats-Expected-Last-Msg-Id, which a single server checks after
// deduplication, and which stores nothing when it fails): a duplicate is
// answered as such, anything else is the conflict.
func (s *Store) conflict(ctx context.Context, a *appendOp) (store.AppendResult, error) {
	if a.id == "" || s.clustered {
		return store.AppendResult{}, store.ErrConflict
	}
	m := nats.NewMsg(a.subject)
	m.Header.Set(hdrMsgID, a.id)
	m.Header.Set(hdrExpectedLastID, "tether-probe-"+nuid.Next())
	pctx, cancel := opCtx(ctx)
	defer cancel()
	ack, err := s.js.PublishMsg(pctx, m)
	switch {
	case err == nil && ack.Duplicate:
		return s.acked(ctx, a, ack)
	case err == nil:
		// Cannot happen: no message ID is ever "tether-probe-<nuid>".
		s.cfg.Logger.Error("natsstore: duplicate probe was stored", "subject", a.subject, "seq", ack.Sequence)
		return store.AppendResult{}, store.ErrConflict
	case isAPIError(err, codeWrongLastMsgID):
		return store.AppendResult{}, store.ErrConflict
	default:
		return store.AppendResult{}, s.mapErr(ctx, err)
	}
}

// backoff waits a little, more after more attempts, with jitter, so that
// stores racing for one channel do not retry in lockstep.
func (s *Store) backoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return nil
	}
	d := time.Duration(rand.Int64N(int64(min(attempt, 50)) * int64(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.closing:
		return store.ErrClosed
	}
}
