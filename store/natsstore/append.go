package natsstore

import (
	"context"
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
// Every message names the channel's previous message twice: in Tether-Prev,
// for readers to detect gaps, and in Nats-Expected-Last-Subject-Sequence,
// so that the stream refuses it if another append got there first. This
// store's appends to one channel go one at a time (they would only refuse
// each other); an append that loses to another store learns the new
// predecessor from the refusal and tries again. A conditional append
// (ExpectLatest) names the expected cursor instead and does not retry: the
// refusal is store.ErrConflict.
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

	c := s.channelState(channel)
	select {
	case c.appendLock <- struct{}{}:
	case <-ctx.Done():
		return store.AppendResult{}, context.Cause(ctx)
	case <-s.closing:
		return store.AppendResult{}, store.ErrClosed
	}
	defer func() { <-c.appendLock }()

	subject := channelSubject(s.prefix, channel)
	var id string
	if opts.IdempotencyKey != "" {
		id = msgID(channel, opts.IdempotencyKey)
	}
	prev := expect
	if !conditional {
		s.mu.Lock()
		prev = c.last
		s.mu.Unlock()
	}
	for attempt := 1; ; attempt++ {
		now := time.Now()
		ack, err := s.publish(ctx, subject, data, id, prev, now)
		if err == nil {
			return s.acked(ctx, channel, ack, now)
		}
		switch {
		case isAPIError(err, codeWrongLastSeq), isAPIError(err, codeWrongLastSeqConst):
			if conditional {
				return s.conflict(ctx, channel, subject, id)
			}
			if prev, err = s.newPrev(ctx, channel, subject, err); err != nil {
				return store.AppendResult{}, s.mapErr(ctx, err)
			}
		case isAPIError(err, codeDupInProcess):
			// Another store's append with this key is being replicated;
			// the next try finds it done and answers its duplicate.
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

// publish sends one message and waits for the stream's acknowledgement,
// which comes once the message is stored at the stream's replicas.
func (s *Store) publish(ctx context.Context, subject string, data []byte, id string, prev uint64, now time.Time) (*jetstream.PubAck, error) {
	m := nats.NewMsg(subject)
	m.Data = data
	p := strconv.FormatUint(prev, 10)
	m.Header.Set(hdrPrev, p)
	m.Header.Set(hdrExpectedSubjSeq, p)
	m.Header.Set(hdrTime, strconv.FormatInt(now.UnixNano(), 10))
	if id != "" {
		m.Header.Set(hdrMsgID, id)
	}
	ctx, cancel := opCtx(ctx)
	defer cancel()
	return s.js.PublishMsg(ctx, m)
}

// acked turns an acknowledgement into the append's result. A duplicate's
// Time is the original message's, read back from the stream; it is zero if
// retention has removed that message.
func (s *Store) acked(ctx context.Context, channel string, ack *jetstream.PubAck, now time.Time) (store.AppendResult, error) {
	res := store.AppendResult{ID: formatCursor(ack.Sequence), Time: now, Duplicate: ack.Duplicate}
	if !ack.Duplicate {
		s.observe(channel, ack.Sequence, true)
		return res, nil
	}
	res.Time = time.Time{}
	m, err := s.leaderGet(ctx, getRequest{Seq: ack.Sequence})
	switch {
	case err == nil:
		res.Time = m.time
	case err != errNoMessage:
		return store.AppendResult{}, s.mapErr(ctx, err)
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
func (s *Store) conflict(ctx context.Context, channel, subject, id string) (store.AppendResult, error) {
	if id == "" || s.clustered {
		return store.AppendResult{}, store.ErrConflict
	}
	m := nats.NewMsg(subject)
	m.Header.Set(hdrMsgID, id)
	m.Header.Set(hdrExpectedLastID, "tether-probe-"+nuid.Next())
	pctx, cancel := opCtx(ctx)
	defer cancel()
	ack, err := s.js.PublishMsg(pctx, m)
	switch {
	case err == nil && ack.Duplicate:
		return s.acked(ctx, channel, ack, time.Time{})
	case err == nil:
		// Cannot happen: no message ID is ever "tether-probe-<nuid>".
		s.cfg.Logger.Error("natsstore: duplicate probe was stored", "subject", subject, "seq", ack.Sequence)
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
