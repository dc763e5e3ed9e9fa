package session

import (
	"context"
	"errors"
	"time"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
)

// StreamOptions are what a write-only transport (SSE) tells the core about
// one stream.
type StreamOptions struct {
	// Heartbeat is how often a silent stream gets a heartbeat event
	// (wire.Ping, which SSE writes as a comment line). Zero means
	// DefaultStreamHeartbeat.
	Heartbeat time.Duration
	// Begin, when set, is called once the subscription has started and
	// before any event is written: the transport commits its response,
	// and says how many bytes it wrote.
	Begin func() (int, error)
	// Waiting counts the stream while its subscription waits for a
	// message. Nil means not counted.
	Waiting Gauge
	// Presence asks for the channel's presence events (wire.Presence).
	Presence bool
}

// DefaultStreamHeartbeat is a stream's heartbeat interval when
// StreamOptions.Heartbeat is zero.
const DefaultStreamHeartbeat = 15 * time.Second

// OpenStream opens a write-only stream (SSE) as a connection of the Core:
// the Registry admits it (ctx bounds the wait) and may end it through the
// Session. ctx is the request's context as conn.Watch hands it: when it
// ends, the client is gone, and the session ends with its reason. The
// caller then calls Stream, and Finish once the request is over,
// whatever happened.
//
// p is who the stream acts for (Authenticate); a refusal by the limits is
// a *limits.Error.
func (c *Core) OpenStream(ctx context.Context, t Transport, p *auth.Principal, oi registry.OpenInfo) (*Session, error) {
	s := newSession(ctx, c, t, stream)
	if s.nc == nil {
		s.nc = oi.Conn
	}
	return s, s.open(ctx, p, oi)
}

// open admits the session against the limits and in the Registry, and
// ties it to the request's context.
func (s *Session) open(ctx context.Context, p *auth.Principal, oi registry.OpenInfo) error {
	lease, err := s.c.admit(p, &oi)
	if err != nil {
		return err
	}
	s.p.Store(p)
	s.lease = lease
	h, err := s.c.reg.Open(ctx, oi, s)
	if err != nil {
		s.releaseLease()
		return err
	}
	s.start(h)
	if s.kind != poll { // a long-poll's context is the request's child
		s.gone = context.AfterFunc(ctx, func() {
			s.decide(ending{reason: conn.ReasonOf(context.Cause(ctx))})
		})
	}
	return nil
}

// ErrEnded: the session ended before the stream could begin.
var ErrEnded = errors.New("tether: session ended")

// Stream subscribes to channel after the cursor (nil: after the latest
// message) and writes its events until the session ends: the blocking
// form of StreamStart, for a transport that keeps its goroutine (SSE over
// HTTP/2). All the session's goroutines have stopped when it returns. An
// error means the subscription could not start and nothing was written
// (the transport answers it its own way): a denial (*auth.Error,
// *limits.Error), a *wire.ErrorFrame (bad_channel,
// too_many_subscriptions), a store error, or ErrEnded.
func (s *Session) Stream(channel string, after *string, opt StreamOptions) error {
	if err := s.beginStream(channel, after, opt); err != nil {
		return err
	}
	s.writeLoop()
	<-s.woundC()
	return nil
}

// StreamStart is Stream without keeping the caller's goroutine: it
// returns once the stream runs (or with Stream's error, nothing written
// and done never called). The stream then holds no goroutine while idle:
// its subscription waits parked, its writer runs only while something is
// queued, its timer is a runtime timer. done is called once, on a
// goroutine of the session's, once the session has wound up and its
// writer stopped; the caller then calls Finish.
func (s *Session) StreamStart(channel string, after *string, opt StreamOptions, done func()) error {
	if err := s.beginStream(channel, after, opt); err != nil {
		return err
	}
	s.done = done
	s.startWriter()
	s.arriveStream()
	return nil
}

// arriveStream is called by StreamStart once the writer runs and by
// windUp once it has finished; the second finishes the stream: it waits
// for the writer and calls done. A blocking Stream never arrives, and
// finishes on its own goroutine.
func (s *Session) arriveStream() {
	if s.streamArrived.Add(1) != 2 {
		return
	}
	s.waitWriter()
	s.done()
}

// beginStream starts the stream's subscription, commits the response
// (opt.Begin) and starts the timer.
func (s *Session) beginStream(channel string, after *string, opt StreamOptions) error {
	s.tm.beat = or(opt.Heartbeat, DefaultStreamHeartbeat)
	sb, err := s.addSub(channel)
	if err != nil {
		return s.notStreamed(err)
	}
	sb.waiting = opt.Waiting
	start, first, err := sb.open(after)
	if err == nil && opt.Begin != nil {
		var n int
		n, err = opt.Begin()
		s.h.Count(0, n)
	}
	if err != nil {
		s.removeSub(sb)
		sb.finish()
		return s.notStreamed(err)
	}
	s.began(sb, start, opt.Presence)
	s.startTimer()
	if !s.goWork(func() { sb.run(start, first, false) }) {
		sb.finish()
	}
	return nil
}

// Unwatch stops ending the session when the request's context ends: the
// transport watches its client itself from now on (a hijacked
// connection, whose handler returns while the stream goes on) and ends
// the session through End.
//
// It also lets go of the request's context (the watch's closure holds
// it), and with it what net/http and conn.Watch hang on it: an idle
// hijacked stream keeps none of its request. Call it on the goroutine
// that runs Stream or StreamStart, before the stream can end.
func (s *Session) Unwatch() {
	if s.gone != nil {
		s.gone()
		s.gone = nil
	}
}

// notStreamed ends a stream that could not begin, and returns err.
func (s *Session) notStreamed(err error) error {
	s.decide(ending{reason: conn.ReasonCompleted}) // Finish takes Watch's verdict
	<-s.woundC()
	return err
}

// Finish records the end of an HTTP session in the Registry, once its
// request is over: the server's own decision (kicked, shutdown,
// slow-consumer) if it made one, else what conn.Watch saw of the client.
func (s *Session) Finish(e conn.End) {
	if s.h == nil {
		return
	}
	s.releaseLease()
	if s.gone != nil {
		s.gone()
	}
	reason, noticed := e.Reason, e.Noticed
	if end := s.end(); end != nil && end.server {
		reason, noticed = end.reason, end.noticed
	}
	s.h.End(reason, noticed)
	s.cancel(context.Canceled) // release the session's context
}

// ServerEnd is how the server ended an HTTP session.
type ServerEnd struct {
	Reason conn.Reason
	// Closed: the Registry closed the session (an operator, or a shutdown
	// past its notice): the answer says Connection: close.
	Closed bool
	// ReconnectAfter is the shutdown notice's hint (zero if none came).
	ReconnectAfter time.Duration
}

// ServerEnded reports whether the server decided the session's end
// (shutdown, an operator's close, a limit), so that an HTTP client is owed
// an answer, and how.
func (s *Session) ServerEnded() (ServerEnd, bool) {
	e := s.end()
	if e == nil || !e.server {
		return ServerEnd{}, false
	}
	return ServerEnd{Reason: e.reason, Closed: e.closed, ReconnectAfter: time.Duration(s.hint.Load()) * time.Millisecond}, true
}
