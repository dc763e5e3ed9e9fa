package session

import (
	"context"
	"time"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
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
// Session. ctx is the request's context as conn.Watch hands it; the
// session's own context is not its child (a long-poll may outlive its
// handler: see PollWait), so a client that leaves ends the session
// through Poll's ctx, or the transport's own watch (End). The caller
// then calls Poll (or PollNow and PollWait.Park), and Finish once the
// request is over. p is who the long-poll acts for (Authenticate); a
// refusal by the limits is a *limits.Error.
func (c *Core) OpenPoll(ctx context.Context, p *auth.Principal, oi registry.OpenInfo) (*Session, error) {
	// Not the request's context, nor a child of it: a parked long-poll
	// would keep the request's whole chain of contexts (net/http's,
	// Watch's) alive while it waits. The core reads no context values.
	s := newSession(context.Background(), c, nil, poll)
	s.nc = oi.Conn
	return s, s.open(ctx, p, oi)
}

// Poll answers a long-poll once: at once when there is something to say,
// else after waiting up to r.Wait for the next message. Reads are shared
// with every subscriber of the channel, and a page's answer is encoded
// once per PageFormat. An error is a denial (*auth.Error: the principal
// may not read the channel), a store's (nothing was answered), or the
// session's end when the client left. The wait ends by the token's
// expiry: the next poll needs a fresh token.
//
// Poll blocks its caller while it waits; ctx is the request's, whose end
// means the client is gone. A transport that can let go of its
// goroutine uses PollNow and PollWait.Park instead.
func (s *Session) Poll(ctx context.Context, r PollRequest) (PollAnswer, error) {
	ans, w, err := s.PollNow(r)
	if w == nil {
		return ans, err
	}
	return w.Wait(ctx)
}

// Wait parks the long-poll and waits for its answer on the caller's
// goroutine; ctx is the request's, whose end means the client is gone.
func (w *PollWait) Wait(ctx context.Context) (PollAnswer, error) {
	type result struct {
		ans PollAnswer
		err error
	}
	got := make(chan result, 1)
	w.Park(func(ans PollAnswer, err error) { got <- result{ans, err} })
	select {
	case res := <-got:
		return res.ans, res.err
	case <-ctx.Done():
		w.s.End(conn.ReasonOf(context.Cause(ctx)))
		res := <-got
		return res.ans, res.err
	}
}

// End ends an HTTP session whose client left (reason says how), unless
// its end was decided already: a parked long-poll is answered with the
// session's end (Park's done gets an error), a stream winds up.
func (s *Session) End(reason conn.Reason) {
	s.decide(ending{reason: reason})
}

// PollNow does a long-poll's first read. When there is something to say,
// or nothing to wait for (r.Wait zero, or the token expires now), it
// answers (w is nil; the error is as Poll's). Otherwise w is the wait
// for the next message: the caller parks it (PollWait.Park), or lets it
// go (the session's end then unparks nothing).
func (s *Session) PollNow(r PollRequest) (ans PollAnswer, w *PollWait, err error) {
	if err := s.Authorize(Act{Op: OpSubscribe, Channel: r.Channel}); err != nil {
		return PollAnswer{}, nil, err
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
			return PollAnswer{}, nil, err
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
		return PollAnswer{After: after}, nil, err
	}
	if len(p.res.Messages) == 0 && !p.res.Gap && r.Wait > 0 {
		r.After = nil // not needed any more: after holds it
		return PollAnswer{After: after}, &PollWait{s: s, r: r, after: after, since: start}, nil
	}
	return PollAnswer{Body: p.page(r.Format), After: after}, nil, nil
}

// PollWait is a long-poll that found nothing and waits for its channel's
// next message, parked in the core with no goroutine: a shared waiter
// per channel and cursor (parking) says when the channel has news, a
// runtime timer when the wait runs out, and the session's context when
// it ends (the client left, the token expired, an operator's close, a
// shutdown).
type PollWait struct {
	s     *Session
	r     PollRequest
	after store.Cursor
	since time.Time // when the poll came: the read after the wait shares only pages read since

	done     func(PollAnswer, error)
	timer    *time.Timer
	stop     func() bool // the session context's watch
	parkedIn *parkGroup  // guarded by parking.mu; nil unless parked
}

// Park parks the long-poll until it can answer, then calls done once,
// never on the caller's goroutine: with the page of messages (Body set),
// or with no Body when the wait ran out or the server ended the session
// (ServerEnded: answer the keepalive), or with an error as Poll's.
func (w *PollWait) Park(done func(PollAnswer, error)) {
	w.done = done
	s, p := w.s, &w.s.c.parking
	p.mu.Lock()
	g := p.groupLocked(s.c.store, parkKey{w.r.Channel, w.after})
	if g.polls == nil {
		g.polls = map[*PollWait]struct{}{}
	}
	g.polls[w] = struct{}{}
	w.parkedIn = g
	if w.r.Waiting != nil {
		w.r.Waiting.Inc()
	}
	// Both run on their own goroutines once due, and wait for p.mu:
	// whoever takes w out of its group answers.
	w.timer = time.AfterFunc(w.r.Wait, func() {
		if p.removePoll(w) {
			w.answer(nil)
		}
	})
	w.stop = context.AfterFunc(s.ctx, func() {
		if p.removePoll(w) {
			w.answer(context.Cause(s.ctx))
		}
	})
	p.mu.Unlock()
}

// removePoll takes w out of its group, if it is parked; the caller then
// answers it.
func (p *parking) removePoll(w *PollWait) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := w.parkedIn
	if g == nil {
		return false
	}
	delete(g.polls, w)
	w.parkedIn = nil
	if w.r.Waiting != nil {
		w.r.Waiting.Dec()
	}
	p.leftLocked(g)
	return true
}

// takePollsLocked takes every long-poll out of g, which has woken; the
// caller wakes them. p.mu is held.
func (p *parking) takePollsLocked(g *parkGroup) []*PollWait {
	if len(g.polls) == 0 {
		return nil
	}
	polls := make([]*PollWait, 0, len(g.polls))
	for w := range g.polls {
		w.parkedIn = nil
		if w.r.Waiting != nil {
			w.r.Waiting.Dec()
		}
		polls = append(polls, w)
	}
	g.polls = nil
	return polls
}

// wake answers a long-poll whose group's wait returned err: nil means a
// message came after its cursor, which it reads, sharing only a page
// whose read started after the poll came (since): its first read may have
// been a stale empty page (readBeforeWait), and an older non-empty page
// would answer less than the channel held when the poll came.
func (w *PollWait) wake(err error) {
	w.unwatch()
	s := w.s
	var p *page
	if err == nil {
		p, err = s.c.reads.read(s.ctx, s.c.store, w.r.Channel, w.after, w.r.Limit, w.since)
	}
	switch {
	case err == nil:
		w.done(PollAnswer{Body: p.page(w.r.Format), After: w.after}, nil)
	case s.ctx.Err() != nil:
		w.ended(context.Cause(s.ctx))
	default:
		w.done(PollAnswer{After: w.after}, err)
	}
}

// answer answers a long-poll that was taken out of its group by its timer
// (ended nil: the keepalive) or by the session's end.
func (w *PollWait) answer(ended error) {
	w.unwatch()
	if ended == nil {
		w.done(PollAnswer{After: w.after}, nil)
		return
	}
	w.ended(ended)
}

// ended answers a long-poll whose session ended: the keepalive when the
// server ended it, else cause (the client left).
func (w *PollWait) ended(cause error) {
	if _, ok := w.s.ServerEnded(); ok {
		w.done(PollAnswer{After: w.after}, nil)
		return
	}
	w.done(PollAnswer{After: w.after}, cause)
}

// unwatch stops the timer and the session's watch; one of them may be
// running already, and finds w unparked.
func (w *PollWait) unwatch() {
	w.timer.Stop()
	w.stop()
}

// Release gives the long-poll's place in the limits back before Finish
// records its end, so that a client polling again on another connection
// the moment it has its answer is not refused for the one it just had.
func (s *Session) Release() { s.releaseLease() }

// Wrote counts bytes an HTTP transport wrote for the session (shown in
// the Registry's Info).
func (s *Session) Wrote(n int) { s.h.Count(0, n) }
