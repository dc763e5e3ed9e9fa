package session

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/latch"
	"github.com/tether-run/tether/limits"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/wire"
)

// Session is one connection of any transport as the core serves it. It
// implements registry.Peer: Close and NotifyShutdown are safe to call from
// any goroutine at any time. Extensions see it through its exported
// methods (ext.go).
type Session struct {
	c  *Core
	t  Transport // nil for a long-poll
	f  Format
	nc net.Conn // the raw connection, if known
	h  *registry.Handle
	q  *queue
	// guard keeps the kernel's TCP_USER_TIMEOUT off a peer that is alive
	// but not reading; nil when the transport's socket has none. Set by
	// start; used under tmu only.
	guard *conn.StallGuard

	// p is who the session acts for; replaced by a refresh (same sub).
	p atomic.Pointer[auth.Principal]
	// lease holds the session's place in the limits; nil without limits.
	// Set before the session is opened; released once, when it ends
	// (leaseGone).
	lease *limits.Lease

	ctx    context.Context // requests and subscriptions; cancelled once the end is decided
	cancel context.CancelCauseFunc

	// Fields are ordered so that the small ones pack: an idle connection
	// is mostly its Session.
	workMu   sync.Mutex
	stopping bool // guarded by workMu; no more work starts
	// kind says what the transport does: reads frames (framed), only
	// writes (stream), or answers once (poll).
	kind      kind
	leaseGone atomic.Bool    // the lease was released
	inFlight  atomic.Int32   // requests in flight (at most Config.MaxInFlight)
	work      sync.WaitGroup // request handlers and subscriptions; Add under workMu

	lastRecv  atomic.Int64 // unix nanos: any frame arrived
	lastApp   atomic.Int64 // unix nanos: application data went either way
	lastWrite atomic.Int64 // unix nanos: anything was written
	pings     atomic.Uint64
	// unread is the lag clock (unix nanos) of the oldest message written
	// into the socket since the stall guard last saw the peer's window
	// open; 0 if none.
	unread   atomic.Int64
	hint     atomic.Int64 // the shutdown notice's reconnect hint, in ms
	wrote    atomic.Bool  // a frame was written since the timer last looked at the socket
	notified atomic.Bool  // NotifyShutdown was called
	usedExt  atomic.Bool  // an Extension served a request
	// ended is set once ending is (after the socket was acted on): the
	// end is decided. Read without endMu by who must not queue past it.
	ended atomic.Bool
	gone  func() bool // HTTP sessions: stops watching the request's context

	// The timer (timer.go): a runtime timer, no goroutine. Nil for a
	// long-poll, which has none.
	tm *sessionTimer

	endMu   sync.Mutex
	running bool        // guarded by endMu; start ran: the end winds up on its own goroutine
	ending  *ending     // guarded by endMu; set once
	wound   latch.Latch // guarded by endMu; fires when windUp has finished (woundC)

	// Framed sessions only: the reader (framed.go), and done, called once
	// the session has wound up (Core.Start).
	rd   *reader
	done func()

	mu sync.Mutex
	// streamArrived counts StreamStart's start and windUp's end: the
	// second finishes the stream (stream.go). Atomic, not under mu: it
	// sits here so that it packs.
	streamArrived atomic.Int32
	subs          subSet // guarded by mu
}

type kind uint8

const (
	framed kind = iota // WebSocket, TCP: reads client frames
	stream             // SSE: write-only
	poll               // long-poll: answers once
)

// ending is the decided end of a connection: the first decision wins.
type ending struct {
	reason  conn.Reason
	mode    conn.CloseMode // "" when the peer is already gone: just close
	noticed time.Duration
	final   any  // an event to send last, before a graceful close
	server  bool // the server decided (not the peer's departure)
	closed  bool // through Close: an HTTP answer says Connection: close
	drop    bool // drop queued messages before the final event
	// abort: a protocol error. The final event is flushed within
	// abortFlush, not FlushTimeout, and the transport aborts (Aborter)
	// instead of closing gracefully: nothing more is read.
	abort bool
}

// abortFlush bounds the flush of the error frame after a protocol error:
// a peer that sends what it should not is not waited for.
const abortFlush = 250 * time.Millisecond

// newSession makes a session of kind k. parent is the context a long-poll's
// session derives its own from (the request's: it ends when the client is
// gone); the others' ignore it.
func newSession(parent context.Context, c *Core, t Transport, k kind) *Session {
	s := &Session{c: c, t: t, kind: k}
	// A long-poll answers once from a shared page: it queues nothing,
	// handles no requests, has no subscription and no writer, so it takes
	// none of their state (a waiting long-poll is the most numerous
	// connection of all).
	if k != poll {
		s.q = newQueue(c.cfg.QueueBytes)
		s.tm = &sessionTimer{}
	}
	if k == poll {
		// A waiting long-poll has nothing to wind up when its client
		// leaves: its context ends with the request's, and Finish takes
		// Watch's verdict (no AfterFunc, the cost of one per waiting
		// request).
		s.ctx, s.cancel = context.WithCancelCause(parent)
	} else {
		// The session's context ends when its end is decided.
		s.ctx, s.cancel = context.WithCancelCause(context.Background())
	}
	if t != nil {
		s.f, s.nc = t.Format(), t.NetConn()
	}
	return s
}

func (s *Session) now() time.Time { return s.c.now() }

// start records the handle and starts the clocks and, for a streaming
// session, the timer. From now on a decided end is wound up on its own
// goroutine (windUp).
func (s *Session) start(h *registry.Handle) {
	s.h = h
	now := s.now().UnixNano()
	s.lastRecv.Store(now)
	s.lastApp.Store(now)
	s.lastWrite.Store(now)
	if s.kind != poll && s.nc != nil {
		s.guard = conn.NewStallGuard(s.nc)
	}
	if s.kind == framed {
		s.startTimer() // a stream's, once it knows its heartbeat (Stream)
	}
	s.endMu.Lock()
	s.running = s.kind != poll
	early := s.ending != nil
	s.endMu.Unlock()
	if early && s.running {
		go s.windUp()
	}
}

// runFramed starts serving a framed connection and returns: the
// session's goroutines run only while there is work. The reader reads
// while there is something to read (readiness, framed.go), the writer
// writes while something is queued (queue.enable), the timer keeps the
// limits, and once the end is decided windUp winds the session up and
// finishFramed records the end and calls done.
func (s *Session) runFramed(h *registry.Handle, t FramedTransport, first []byte) {
	s.newReader(t)
	s.start(h)
	s.startWriter()
	s.launchReader(first)
}

// finishFramed runs on the wind-up's goroutine once windUp has finished:
// it waits for the writer and the reader to stop, closes the connection,
// records the end and calls done.
func (s *Session) finishFramed() {
	s.waitWriter()
	s.t.Close()
	s.stopReader()
	e := s.end()
	s.releaseLease()
	s.h.End(e.reason, e.noticed)
	if s.done != nil {
		s.done()
	}
}

// releaseLease gives the session's place in the limits back, once.
func (s *Session) releaseLease() {
	if s.lease != nil && s.leaseGone.CompareAndSwap(false, true) {
		s.lease.Release()
	}
}

// windUp runs on its own goroutine once the end is decided: it stops the
// timer, the requests and the subscriptions, tells extensions and
// followers, and closes the connection (flushing first when graceful).
// Stream waits for it (s.wound); a framed session finishes on its
// goroutine (finishFramed).
func (s *Session) windUp() {
	s.windDown()
	s.endMu.Lock()
	s.wound.Fire()
	s.endMu.Unlock()
	switch s.kind {
	case framed:
		s.finishFramed()
	case stream:
		s.arriveStream() // stream.go
	}
}

func (s *Session) windDown() {
	s.stopTimer()
	e := s.end()
	s.workMu.Lock()
	s.stopping = true // the reader may still dispatch during a graceful close
	s.workMu.Unlock()
	s.work.Wait()
	// Every request and subscription has returned: tell extensions and
	// the jobs at once (before the flush) whether this peer departed.
	s.unfollowAll(e.reason)
	s.c.presence.leaveAll(s, string(e.reason))
	if s.usedExt.Load() {
		for _, x := range s.c.extList {
			x.Ended(s, departed(e.reason))
		}
	}
	if e.mode == conn.CloseGraceful {
		s.closeGracefully(e, s.q.stoppedC())
	} else {
		s.q.close(true)
	}
	s.t.Close()
}

// closeGracefully flushes what is queued and the final event, within
// FlushTimeout, then says goodbye; a peer that does not take the flush is
// reset. A slow consumer whose transport has no final event (SSE) is reset
// at once: it would not take a flush either.
func (s *Session) closeGracefully(e *ending, writerDone <-chan struct{}) {
	var final []byte
	if e.final != nil {
		final = s.f.Encode(e.final)
	}
	if e.reason == conn.ReasonSlowConsumer || e.drop {
		s.q.dropMessages("")
	}
	if e.reason == conn.ReasonSlowConsumer && final == nil {
		s.reset()
		s.q.close(true)
		return
	}
	if final != nil {
		s.q.forceCtrl(item{frame: final})
	}
	s.q.close(false)
	wait := s.c.cfg.FlushTimeout
	if e.abort {
		wait = min(wait, abortFlush)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-writerDone:
		if !e.abort {
			s.t.CloseGracefully(e.reason)
		} else if a, ok := s.t.(Aborter); ok {
			a.Abort(e.reason)
		} else {
			s.reset()
		}
	case <-t.C:
		s.reset()
		s.q.close(true)
	}
}

// reset resets the connection, if the session knows its socket.
func (s *Session) reset() {
	if s.nc != nil {
		conn.CloseConn(s.nc, conn.CloseReset)
	}
}

// decide records the connection's end; the first decision wins. For reset
// and discard it acts on the socket at once, which unblocks the reader
// and the writer; the timer goroutine (or the long-poll) does the rest.
func (s *Session) decide(e ending) bool {
	s.endMu.Lock()
	if s.ending != nil {
		s.endMu.Unlock()
		return false
	}
	s.ending = &e
	running := s.running
	s.endMu.Unlock()
	// Act on the socket before anyone wakes up: a plain Close would
	// otherwise race this one and send FIN instead of RST.
	if (e.mode == conn.CloseReset || e.mode == conn.CloseDiscard) && s.nc != nil {
		if err := conn.CloseConn(s.nc, e.mode); err != nil {
			s.c.log.Debug("close", "mode", e.mode, "err", err)
		}
	}
	s.ended.Store(true)
	s.cancel(&conn.GoneError{Reason: e.reason})
	s.endSubs()
	if running {
		go s.windUp() // it blocks (flush, requests); the decider must not
	}
	return true
}

// endSubs ends every subscription once the session's end is decided (the
// subscriptions' contexts are not the session's children: sub.enter).
// They stay listed for the wind-up (presence, followers, the
// slow-consumer's cursors).
func (s *Session) endSubs() {
	if s.kind == poll {
		return // a long-poll has none
	}
	s.mu.Lock()
	subs := make([]*sub, 0, s.subs.len())
	for sb := range s.subs.all() {
		subs = append(subs, sb)
	}
	s.mu.Unlock()
	for _, sb := range subs {
		sb.end()
	}
}

// woundC returns a channel closed once the wind-up has finished.
func (s *Session) woundC() <-chan struct{} {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.wound.Wait()
}

func (s *Session) end() *ending {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.ending
}

// Close implements registry.Peer.
func (s *Session) Close(mode conn.CloseMode, reason conn.Reason) error {
	var final any
	if reason == conn.ReasonKicked {
		final = wire.ErrorFrame{Type: wire.TypeError, Code: wire.CodeKicked, Message: "closed by the server's operator"}
	}
	if !s.decide(ending{reason: reason, mode: mode, final: final, server: true, closed: true}) {
		s.escalate(mode, reason)
	}
	return nil
}

// escalate acts on a Close that came after the end was decided. An
// operator's close (kicked, any mode) or any reset or discard does not
// wait for an end already under way, which may be blocked (a graceful
// close waiting on a peer that stopped mid-frame): it resets the socket
// at once, which unblocks every read and write, unless the wind-up has
// finished.
func (s *Session) escalate(mode conn.CloseMode, reason conn.Reason) {
	if mode == conn.CloseGraceful && reason != conn.ReasonKicked {
		return
	}
	s.endMu.Lock()
	wound := s.wound.Fired()
	s.endMu.Unlock()
	if wound {
		return
	}
	if mode != conn.CloseDiscard {
		mode = conn.CloseReset
	}
	if s.nc != nil {
		conn.CloseConn(s.nc, mode)
	}
	if s.t != nil {
		s.t.Close()
	}
}

// NotifyShutdown implements registry.Peer. A framed client gets the
// shutdown frame ahead of any message and leaves by itself (bye); a
// stream gets the shutdown event as its last and ends; a long-poll
// answers its keepalive with the hint.
func (s *Session) NotifyShutdown(reconnectAfter time.Duration) {
	s.hint.Store(reconnectAfter.Milliseconds())
	s.notified.Store(true)
	ev := wire.Shutdown{Type: wire.TypeShutdown, ReconnectAfterMS: reconnectAfter.Milliseconds()}
	switch s.kind {
	case framed:
		s.q.forceCtrl(item{frame: s.f.Encode(ev)})
	case stream:
		s.decide(ending{reason: conn.ReasonShutdown, mode: conn.CloseGraceful, final: ev, server: true, drop: true})
	case poll:
		s.decide(ending{reason: conn.ReasonShutdown, mode: conn.CloseGraceful, server: true})
	}
}

// departed reports whether a connection that ended for reason is a real
// departure of its peer: anything but the server's own shutdown, after
// which a worker or follower reconnects (to this node or another).
func departed(reason conn.Reason) bool { return reason != conn.ReasonShutdown }

// goWork starts f as request work unless the session is ending.
func (s *Session) goWork(f func()) bool {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	if s.stopping {
		return false
	}
	s.work.Go(f)
	return true
}
