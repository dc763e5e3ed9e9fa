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
	"github.com/tether-run/tether/store"
)

// stored is a message as read back from the stream.
type stored struct {
	subject string
	seq     uint64
	prev    uint64 // Tether-Prev
	nonce   string // Tether-Nonce
	time    time.Time
	data    []byte
}

func (m stored) message() store.Message {
	return store.Message{ID: formatCursor(m.seq), Data: m.data, Time: m.time}
}

// getRequest is JetStream's message get request (JSApiMsgGetRequest).
type getRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// getResponse is JetStream's answer to a (non-direct) message get.
type getResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Message *struct {
		Subject string `json:"subject"`
		Seq     uint64 `json:"seq"`
		Header  []byte `json:"hdrs"`
		Data    []byte `json:"data"`
	} `json:"message"`
}

// errNoMessage is a get that found no message.
var errNoMessage = errors.New("no message")

// leaderGet gets one message through the stream leader, which has applied
// every acknowledged append: what it answers is never behind an
// acknowledgement (direct gets may be served by a lagging replica).
func (s *Store) leaderGet(ctx context.Context, req getRequest) (stored, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return stored{}, err
	}
	var resp *nats.Msg
	err = s.retry(ctx, func(ctx context.Context) (err error) {
		resp, err = s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.cfg.Stream, body)
		return err
	})
	if err != nil {
		return stored{}, err
	}
	var r getResponse
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return stored{}, fmt.Errorf("message get: %w", err)
	}
	if r.Error != nil {
		if r.Error.Code == 404 {
			return stored{}, errNoMessage
		}
		return stored{}, fmt.Errorf("message get: %w", &jetstream.APIError{
			Code: r.Error.Code, ErrorCode: jetstream.ErrorCode(r.Error.ErrCode), Description: r.Error.Description})
	}
	if r.Message == nil {
		return stored{}, errors.New("message get: empty answer")
	}
	m := stored{seq: r.Message.Seq, data: r.Message.Data}
	if len(r.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(r.Message.Header)
		if err != nil {
			return stored{}, fmt.Errorf("message %d: headers: %w", m.seq, err)
		}
		if err := m.parseHeaders(h); err != nil {
			return stored{}, err
		}
	}
	if m.data == nil {
		m.data = []byte{}
	}
	return m, nil
}

// parseHeaders reads the store's headers into m.
func (m *stored) parseHeaders(h nats.Header) error {
	if v := h.Get(hdrPrev); v == prevAdjacent {
		m.prev = m.seq - 1
	} else if v != "" {
		p, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("message %d: bad %s %q", m.seq, hdrPrev, v)
		}
		m.prev = p
	}
	m.nonce = h.Get(hdrNonce)
	if v := h.Get(hdrTime); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("message %d: bad %s %q", m.seq, hdrTime, v)
		}
		m.time = time.Unix(0, n)
	}
	return nil
}

// latest returns the stream sequence of the channel's newest message, 0 when
// it never had one, from the leader. Retention never removes a channel's
// newest message, so this is the channel's Latest.
func (s *Store) latest(ctx context.Context, subject string) (uint64, error) {
	m, err := s.leaderGet(ctx, getRequest{LastFor: subject})
	if errors.Is(err, errNoMessage) {
		return 0, nil
	}
	return m.seq, err
}

// directBatch asks any replica for up to n messages of subject (of any
// subject if it is empty) with
// sequences from from on. It may return fewer: the server caps a batch's
// bytes, and a replica may lag the leader.
func (s *Store) directBatch(ctx context.Context, subject string, from uint64, n int) ([]stored, error) {
	// With no subject, the batch is of every subject from sequence from.
	body, err := json.Marshal(getRequest{Seq: max(from, 1), NextFor: subject, Batch: n})
	if err != nil {
		return nil, err
	}
	var out []stored
	err = s.retry(ctx, func(ctx context.Context) (err error) {
		out, err = s.directBatchOnce(ctx, body)
		return err
	})
	return out, err
}

// directBatchOnce sends one direct get batch request and collects the
// answers up to the end-of-batch status.
func (s *Store) directBatchOnce(ctx context.Context, body []byte) ([]stored, error) {
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+s.cfg.Stream, inbox, body); err != nil {
		return nil, err
	}
	var out []stored
	for {
		resp, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, err
		}
		switch status := resp.Header.Get(hdrStatus); status {
		case "":
		case "404", "204": // no message at all; end of batch
			return out, nil
		default:
			return nil, fmt.Errorf("direct get: status %s %s", status, resp.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(resp.Header.Get(hdrSequence), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("direct get: bad %s %q", hdrSequence, resp.Header.Get(hdrSequence))
		}
		m := stored{subject: resp.Header.Get(hdrSubject), seq: seq, data: resp.Data}
		if m.data == nil {
			m.data = []byte{}
		}
		if err := m.parseHeaders(resp.Header); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
}

// Codes of JetStream refusals that mean the stream or the cluster has no
// leader for a moment (nats-server's jetstream_errors_generated.go).
const (
	codeClusterNotLeader jetstream.ErrorCode = 10009 // "JetStream cluster can not handle request"
	codeStreamOffline    jetstream.ErrorCode = 10118 // "stream is offline"
)

// leaderless reports whether err says that nothing answered for the stream
// because it, or the cluster, has no leader right now (an election after
// a server died): nothing was stored or read, and the request may be sent
// again.
func leaderless(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		isAPIError(err, codeClusterNotAvailable) || isAPIError(err, codeClusterNotLeader) ||
		isAPIError(err, codeStreamOffline)
}

// retry runs a read-only request f with tryTimeout per try, and tries
// again after a try that timed out or found no leader (a failover lost
// the request, or the stream has no leader yet) until ctx ends, or
// opTimeout passes when ctx has no deadline. Reads are safe to repeat.
func (s *Store) retry(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := opCtx(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		tctx, tcancel := context.WithTimeout(ctx, tryTimeout)
		err := f(tctx)
		tcancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) && !leaderless(err) {
			return err
		}
		if err := s.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// scan returns up to limit unexpired messages of subject with sequences
// from from on, oldest first. last is the channel's Latest as the leader
// reported it: the answer is complete up to it. Direct gets serve the
// pages; when one makes no progress before last, the replica that answered
// lags, and the rest is read from the leader.
func (s *Store) scan(ctx context.Context, subject string, from, last uint64, limit int) ([]stored, error) {
	cutoff := s.cutoff()
	var out []stored
	next := from
	for len(out) < limit && next <= last {
		want := min(limit-len(out), maxBatch)
		page, err := s.directBatch(ctx, subject, next, want)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 || page[0].seq > last && next <= last {
			// The newest message is never removed, so a replica that has
			// nothing from next up to last is behind.
			return s.scanLeader(ctx, subject, next, last, limit, out)
		}
		for _, m := range page {
			next = m.seq + 1
			if !m.time.After(cutoff) {
				continue
			}
			out = append(out, m)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// scanLeader continues scan one message at a time through the leader.
func (s *Store) scanLeader(ctx context.Context, subject string, next, last uint64, limit int, out []stored) ([]stored, error) {
	cutoff := s.cutoff()
	for len(out) < limit && next <= last {
		m, err := s.leaderGet(ctx, getRequest{Seq: next, NextFor: subject})
		if errors.Is(err, errNoMessage) {
			break
		}
		if err != nil {
			return nil, err
		}
		next = m.seq + 1
		if m.time.After(cutoff) {
			out = append(out, m)
		}
	}
	return out, nil
}

// maxBatch bounds one direct get batch.
const maxBatch = 256

// cutoff is the accept time at or before which messages have expired; the
// zero time when nothing expires.
func (s *Store) cutoff() time.Time {
	if s.cfg.Retention.MaxAge == 0 {
		return time.Time{}
	}
	return time.Now().Add(-s.cfg.Retention.MaxAge)
}
