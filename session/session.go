package session

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// Session is one connection of any transport as the core serves it. It
// implements registry.Peer: Close and NotifyShutdown are safe to call from
// any goroutine at any time. Extensions see it through its exported
// methods (ext.go).
type Session struct {
	c   *Core
	cfg *Config
	t   Transport // nil for a long-poll
	f   Format
	nc  net.Conn // the raw connection, if known
	h   *registry.Handle
	q   *queue
	// guard keeps the kernel's TCP_USER_TIMEOUT off a peer that is alive
	// but not reading; nil when the transport's socket has none. Used by
	// the timer goroutine only.
	guard *conn.StallGuard
	// kind says what the transport does: reads frames (framed), only
	// writes (stream), or answers once (poll).
	kind kind
	beat time.Duration // stream: heartbeat comment interval

	ctx    context.Context // requests and subscriptions; cancelled once the end is decided
	cancel context.CancelCauseFunc
	slots  chan struct{} // one per request in flight

	workMu   sync.Mutex
	work     sync.WaitGroup // request handlers and subscriptions; Add under workMu
	stopping bool           // guarded by workMu; no more work starts

	lastRecv  atomic.Int64 // unix nanos: any frame arrived
	lastApp   atomic.Int64 // unix nanos: application data went either way
	lastWrite atomic.Int64 // unix nanos: anything was written
	pings     atomic.Uint64
	wrote     atomic.Bool   // a frame was written since the timer loop last looked at the socket
	wroteC    chan struct{} // cap 1: wrote became true
	notified  atomic.Bool   // NotifyShutdown was called
	hint      atomic.Int64  // the shutdown notice's reconnect hint, in ms
	usedExt   atomic.Bool   // an Extension served a request
	gone      func() bool   // HTTP sessions: stops watching the request's context

	endMu  sync.Mutex
	ending *ending       // guarded by endMu; set once
	ended  chan struct{} // closed when ending is set

	mu        sync.Mutex
	subs      map[string]*sub         // guarded by mu
	delivered map[string]store.Cursor // guarded by mu; per subscribed channel, the last cursor written
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
}

func newSession(c *Core, t Transport) *Session {
	s := &Session{
		c: c, cfg: &c.cfg, t: t, q: newQueue(c.cfg.QueueBytes),
		slots: make(chan struct{}, c.cfg.MaxInFlight),
		ended: make(chan struct{}), wroteC: make(chan struct{}, 1),
		subs: map[string]*sub{}, delivered: map[string]store.Cursor{},
	}
	if t != nil {
		s.f, s.nc = t.Format(), t.NetConn()
	}
	return s
}

func (s *Session) now() time.Time { return s.c.now() }

// start records the handle and starts the clocks. parent carries values
// only; the session's context ends when its end is decided.
func (s *Session) start(parent context.Context, h *registry.Handle) {
	s.h = h
	if s.nc != nil {
		s.guard = conn.NewStallGuard(s.nc)
	}
	s.ctx, s.cancel = context.WithCancelCause(context.WithoutCancel(parent))
	now := s.now().UnixNano()
	s.lastRecv.Store(now)
	s.lastApp.Store(now)
	s.lastWrite.Store(now)
}

// runFramed serves a framed connection: the caller's goroutine writes, a
// reader goroutine reads and dispatches, the timer goroutine keeps the
// limits and, once the end is decided, winds the session up.
func (s *Session) runFramed(h *registry.Handle, t FramedTransport, first []byte) {
	s.start(context.Background(), h)
	var loops sync.WaitGroup
	writerDone := make(chan struct{})
	loops.Go(func() { s.readLoop(t, first) })
	loops.Go(func() { s.timerLoop(writerDone) })
	s.writeLoop()
	close(writerDone)
	loops.Wait()
	s.t.Close()
	e := s.end()
	h.End(e.reason, e.noticed)
}

// windUp runs on the timer goroutine once the end is decided: it stops
// the requests and subscriptions, tells extensions and followers, and
// closes the connection (flushing first when graceful).
func (s *Session) windUp(writerDone <-chan struct{}) {
	e := s.end()
	s.workMu.Lock()
	s.stopping = true // the reader may still dispatch during a graceful close
	s.workMu.Unlock()
	s.work.Wait()
	// Every request and subscription has returned: tell extensions and
	// the jobs at once (before the flush) whether this peer departed.
	s.unfollowAll(e.reason)
	if s.usedExt.Load() {
		for _, x := range s.c.extList {
			x.Ended(s, departed(e.reason))
		}
	}
	if e.mode == conn.CloseGraceful {
		s.closeGracefully(e, writerDone)
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
	t := time.NewTimer(s.cfg.FlushTimeout)
	defer t.Stop()
	select {
	case <-writerDone:
		s.t.CloseGracefully(e.reason)
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
	s.endMu.Unlock()
	// Act on the socket before anyone wakes up: a plain Close would
	// otherwise race this one and send FIN instead of RST.
	if (e.mode == conn.CloseReset || e.mode == conn.CloseDiscard) && s.nc != nil {
		if err := conn.CloseConn(s.nc, e.mode); err != nil {
			s.c.log.Debug("close", "mode", e.mode, "err", err)
		}
	}
	close(s.ended)
	if s.cancel != nil {
		s.cancel(&conn.GoneError{Reason: e.reason})
	}
	return true
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
	s.decide(ending{reason: reason, mode: mode, final: final, server: true, closed: true})
	return nil
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
