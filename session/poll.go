package session

import (
	"context"
	"errors"
	"time"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/store"
)

// PageFormat encodes a whole page of a channel as one answer (a long-poll
// answer). Like a Format it must be comparable: a page shared between
// long-polls keeps one encoding per PageFormat.
type PageFormat interface {
	EncodePage(after store.Cursor, res store.ReadResult) []byte
}

// PollRequest is what a long-poll asks.
type PollRequest struct {
	Channel string
	// After is the cursor to read after; nil means after the channel's
	// latest message (only what is published from now on).
	After *string
	Limit int
	// Wait is how long to wait when nothing is there yet; zero answers at
	// once.
	Wait time.Duration
	// Format encodes the answer.
	Format PageFormat
	// Waiting counts the long-poll while it waits. Nil means not counted.
	Waiting Gauge
}

// PollAnswer is a long-poll's outcome.
type PollAnswer struct {
	// Body is the encoded page: messages, or a gap, or (Wait zero) an
	// empty page. Nil means there is nothing to say: the wait ran out, or
	// the server ended the session (see ServerEnded); answer the
	// keepalive.
	Body []byte
	// After is the cursor the long-poll read after, the keepalive's next.
	After store.Cursor
}

// OpenPoll opens a long-poll request as a connection of the Core: the
// Registry admits it (ctx bounds the wait) and may end it through the
// Session. ctx is the request's context as conn.Watch hands it. The
// caller then calls Poll, and Finish once the request is over. p is who
// the long-poll acts for (Authenticate); a refusal by the limits is a
// *limits.Error.
func (c *Core) OpenPoll(ctx context.Context, p *auth.Principal, oi registry.OpenInfo) (*Session, error) {
	s := newSession(ctx, c, nil, poll)
	s.nc = oi.Conn
	return s, s.open(ctx, p, oi)
}

// Poll answers a long-poll once: at once when there is something to say,
// else after waiting up to r.Wait for the next message. It starts no
// goroutine. Reads are shared with every subscriber of the channel, and a
// page's answer is encoded once per PageFormat. An error is a denial
// (*auth.Error: the principal may not read the channel), a store's
// (nothing was answered), or the session's end when the client left. The
// wait ends by the token's expiry: the next poll needs a fresh token.
func (s *Session) Poll(r PollRequest) (PollAnswer, error) {
	if err := s.Authorize(Act{Op: OpSubscribe, Channel: r.Channel}); err != nil {
		return PollAnswer{}, err
	}
	if exp := s.Principal().Expires(); !exp.IsZero() {
		r.Wait = max(min(r.Wait, exp.Sub(s.now())), 0)
	}
	s.h.SetChannels([]string{r.Channel})
	st := s.c.store
	start := time.Now() // the first read answers what is there from now on
	var after store.Cursor
	if r.After == nil {
		b, err := st.Bounds(s.ctx, r.Channel)
		if err != nil {
			return PollAnswer{}, err
		}
		after = b.Latest
	} else {
		after = store.Cursor(*r.After)
	}
	read := s.c.reads.read
	if r.Wait > 0 {
		read = s.c.reads.readBeforeWait // an empty page is followed by a wait
	}
	p, err := read(s.ctx, st, r.Channel, after, r.Limit, start)
	if err != nil {
		return PollAnswer{After: after}, err
	}
	if len(p.res.Messages) == 0 && !p.res.Gap && r.Wait > 0 {
		if p, err = s.waitAndRead(r, after, start); p == nil {
			return PollAnswer{After: after}, err
		}
	}
	return PollAnswer{Body: p.page(r.Format), After: after}, nil
}

// waitAndRead waits for a message after the cursor and reads it, sharing
// only a page whose read started after the poll did (since): the first
// read may have been a stale empty page (readBeforeWait), and an older
// non-empty page would answer less than the channel held when the poll
// came. A nil page and nil error: the wait ran out, or the server ended
// the session.
func (s *Session) waitAndRead(r PollRequest, after store.Cursor, since time.Time) (*page, error) {
	wctx, cancel := context.WithTimeout(s.ctx, r.Wait)
	defer cancel()
	if r.Waiting != nil {
		r.Waiting.Inc()
		defer r.Waiting.Dec()
	}
	err := s.c.store.Wait(wctx, r.Channel, after)
	switch {
	case err == nil:
		return s.c.reads.read(s.ctx, s.c.store, r.Channel, after, r.Limit, since)
	case s.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		return nil, nil
	case s.ctx.Err() != nil:
		if _, ok := s.ServerEnded(); ok {
			return nil, nil
		}
		return nil, context.Cause(s.ctx)
	}
	return nil, err
}

// Wrote counts bytes an HTTP transport wrote for the session (shown in
// the Registry's Info).
func (s *Session) Wrote(n int) { s.h.Count(0, n) }
