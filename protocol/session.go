package protocol

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/store"
)

// Conn is one framed connection as a transport hands it to the Engine.
// ReadFrame is called from one goroutine and WriteFrame from another, at
// the same time; CloseGracefully and Close after the writer has stopped;
// NetConn at any time.
type Conn interface {
	// ReadFrame returns the next frame, valid until the next call. A frame
	// over the size limit is an error wrapping ErrFrameTooLarge.
	ReadFrame(ctx context.Context) ([]byte, error)
	// WriteFrame sends one frame; flush false says another follows at
	// once, so a transport may buffer.
	WriteFrame(ctx context.Context, frame []byte, flush bool) error
	// CloseGracefully says goodbye the transport's way once everything
	// was written: a WebSocket close frame, or TCP FIN (conn.CloseConn
	// with conn.CloseGraceful).
	CloseGracefully(reason conn.Reason) error
	// Close releases the connection at once.
	Close() error
	// NetConn is the raw connection, for conn.CloseConn's reset and
	// discard modes.
	NetConn() net.Conn
	// Reason classifies an error of ReadFrame or WriteFrame: how the peer
	// left.
	Reason(err error) conn.Reason
}

// Engine serves the framed protocol on connections of any transport. It
// holds no per-connection state; one Engine serves all of a node's
// WebSocket and TCP connections.
type Engine struct {
	cfg   Config
	reads sharedReads // pages shared by the subscriptions of a channel
}

// NewEngine validates cfg and applies its defaults.
func NewEngine(cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg}, nil
}

// Config returns the configuration in effect, defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Serve runs one connection until it ends: it opens it in the Registry
// (oi says what the transport knows), serves its frames, and returns once
// Handle.End has completed. first, when not nil, is a frame the transport
// already read, served before any other. When ctx is done the connection
// is ended gracefully with reason shutdown. Serve returns an error only
// when the Registry refused the connection; the client has then been sent
// an unavailable error frame and the connection closed.
func (e *Engine) Serve(ctx context.Context, c Conn, oi registry.OpenInfo, first []byte) error {
	s := newSession(e, c)
	h, err := e.cfg.Registry.Open(ctx, oi, s)
	if err != nil {
		if nc := c.NetConn(); nc != nil {
			nc.SetWriteDeadline(time.Now().Add(time.Second))
		}
		c.WriteFrame(context.Background(), errFrame("", CodeUnavailable, "not admitted: "+err.Error()), true)
		c.CloseGracefully(conn.ReasonShutdown)
		c.Close()
		return err
	}
	s.run(ctx, h, first)
	return nil
}

// session is one connection's state. Goroutines, all owned by run, which
// waits for each before it returns: the reader, the writer, the timer
// loop, one per request being handled, one per subscription.
type session struct {
	e   *Engine
	cfg *Config
	c   Conn
	h   *registry.Handle
	q   *queue
	// guard keeps the kernel's TCP_USER_TIMEOUT off a peer that is alive
	// but not reading; nil when the transport's socket has none. Used by
	// the timer goroutine only.
	guard *conn.StallGuard

	ctx    context.Context // requests and subscriptions; cancelled once the end is decided
	cancel context.CancelFunc
	slots  chan struct{} // one per request in flight

	workMu   sync.Mutex
	work     sync.WaitGroup // request handlers and subscriptions; Add under workMu
	stopping bool           // guarded by workMu; no more work starts

	lastRecv atomic.Int64 // unix nanos: any frame arrived
	lastApp  atomic.Int64 // unix nanos: application data went either way
	pings    atomic.Uint64
	wrote    atomic.Bool   // a frame was written since the timer loop last looked at the socket
	wroteC   chan struct{} // cap 1: wrote became true
	notified atomic.Bool   // NotifyShutdown was called

	endMu  sync.Mutex
	ending *ending       // guarded by endMu; set once
	ended  chan struct{} // closed when ending is set

	mu        sync.Mutex
	subs      map[string]*sub         // guarded by mu
	delivered map[string]store.Cursor // guarded by mu; per subscribed channel, the last cursor written

	worker workerState // the attached jobs.Worker, if the client is a worker
}

// ending is the decided end of a connection.
type ending struct {
	reason  conn.Reason
	mode    conn.CloseMode // "" when the peer is already gone: just close
	noticed time.Duration
	final   func() []byte // an error frame to send before a graceful close
}

func newSession(e *Engine, c Conn) *session {
	s := &session{
		e: e, cfg: &e.cfg, c: c, q: newQueue(e.cfg.QueueBytes),
		slots: make(chan struct{}, e.cfg.MaxInFlight),
		ended: make(chan struct{}), wroteC: make(chan struct{}, 1),
		subs: map[string]*sub{}, delivered: map[string]store.Cursor{},
	}
	return s
}

func (s *session) now() time.Time { return s.cfg.Now() }

func (s *session) run(ctx context.Context, h *registry.Handle, first []byte) {
	s.h = h
	s.guard = conn.NewStallGuard(s.c.NetConn())
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	now := s.now().UnixNano()
	s.lastRecv.Store(now)
	s.lastApp.Store(now)

	stopOnCtx := context.AfterFunc(ctx, func() { s.decide(conn.ReasonShutdown, conn.CloseGraceful, 0, nil) })
	defer stopOnCtx()

	var loops sync.WaitGroup
	writerDone := make(chan struct{})
	loops.Go(func() { defer close(writerDone); s.writeLoop() })
	loops.Go(func() { s.readLoop(first) })
	loops.Go(s.timerLoop)

	<-s.ended
	e := s.end()
	s.cancel()
	s.workMu.Lock()
	s.stopping = true // the reader may still dispatch during a graceful close
	s.workMu.Unlock()
	s.work.Wait()
	// Every request and subscription has returned: tell the jobs.Service
	// at once (before the flush) whether this peer departed.
	s.unfollowAll(e.reason)
	s.detachWorker(e.reason)
	if e.mode == conn.CloseGraceful {
		s.closeGracefully(e, writerDone)
	} else {
		s.q.close(true)
		s.c.Close()
	}
	loops.Wait()
	s.c.Close()
	h.End(e.reason, e.noticed)
}

// closeGracefully flushes what is queued and the final frame, within
// FlushTimeout, then says goodbye; a peer that does not take the flush
// is reset.
func (s *session) closeGracefully(e *ending, writerDone <-chan struct{}) {
	if e.reason == conn.ReasonSlowConsumer {
		s.q.dropMessages("")
	}
	if e.final != nil {
		s.q.forceCtrl(item{frame: e.final()})
	}
	s.q.close(false)
	t := time.NewTimer(s.cfg.FlushTimeout)
	defer t.Stop()
	select {
	case <-writerDone:
		s.c.CloseGracefully(e.reason)
	case <-t.C:
		conn.CloseConn(s.c.NetConn(), conn.CloseReset)
	}
}

// decide records the connection's end; the first decision wins. For reset
// and discard it acts on the socket at once, which unblocks the reader
// and the writer; run does the rest.
func (s *session) decide(reason conn.Reason, mode conn.CloseMode, noticed time.Duration, final func() []byte) bool {
	s.endMu.Lock()
	if s.ending != nil {
		s.endMu.Unlock()
		return false
	}
	s.ending = &ending{reason: reason, mode: mode, noticed: noticed, final: final}
	s.endMu.Unlock()
	// Act on the socket before run wakes up: its plain Close would
	// otherwise race this one and send FIN instead of RST.
	if mode == conn.CloseReset || mode == conn.CloseDiscard {
		if err := conn.CloseConn(s.c.NetConn(), mode); err != nil {
			s.cfg.Logger.Debug("close", "mode", mode, "err", err)
		}
	}
	close(s.ended)
	return true
}

func (s *session) end() *ending {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.ending
}

// Close implements registry.Peer.
func (s *session) Close(mode conn.CloseMode, reason conn.Reason) error {
	var final func() []byte
	if reason == conn.ReasonKicked {
		final = func() []byte { return errFrame("", CodeKicked, "closed by the server's operator") }
	}
	s.decide(reason, mode, 0, final)
	return nil
}

// NotifyShutdown implements registry.Peer: it queues the shutdown frame ahead
// of any message.
func (s *session) NotifyShutdown(reconnectAfter time.Duration) {
	s.notified.Store(true)
	s.q.forceCtrl(item{frame: encode(shutdownFrame{Type: TypeShutdown, ReconnectAfterMS: reconnectAfter.Milliseconds()})})
}

// readLoop reads and dispatches frames until the connection ends.
func (s *session) readLoop(first []byte) {
	if first != nil {
		s.h.Count(len(first), 0)
		if !s.dispatch(first) {
			return
		}
	}
	for {
		// Not s.ctx: a WebSocket read cancelled by its context closes the
		// connection, and a graceful close still reads the peer's goodbye.
		// Closing the socket ends the read.
		b, err := s.c.ReadFrame(context.Background())
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				msg := "frame over " + strconv.Itoa(s.cfg.MaxFrameSize) + " bytes"
				s.decide(conn.ReasonProtocolError, conn.CloseGraceful, 0,
					func() []byte { return errFrame("", CodeFrameTooLarge, msg) })
				return
			}
			reason := s.c.Reason(err)
			if reason == "" {
				reason = conn.ReasonClosed
			}
			s.decide(reason, "", 0, nil)
			return
		}
		s.lastRecv.Store(s.now().UnixNano())
		s.h.Count(len(b), 0)
		if !s.dispatch(b) {
			return
		}
	}
}

// writeLoop writes queued frames until the queue is closed and drained or
// a write fails.
func (s *session) writeLoop() {
	for {
		it, more, ok := s.q.pop(context.Background())
		if !ok {
			return
		}
		// Not s.ctx, which ends before a graceful close's flush.
		err := s.c.WriteFrame(context.Background(), it.frame, !more)
		s.q.written()
		if err != nil {
			reason := s.c.Reason(err)
			if reason == "" {
				reason = conn.ReasonWriteFailed
			}
			s.decide(reason, "", 0, nil)
			return
		}
		if !s.wrote.Swap(true) {
			signal(s.wroteC)
		}
		s.h.Count(0, len(it.frame))
		if it.app {
			s.lastApp.Store(s.now().UnixNano())
		}
		if it.cursor != "" {
			s.mu.Lock()
			if _, ok := s.delivered[it.channel]; ok {
				s.delivered[it.channel] = it.cursor
			}
			s.mu.Unlock()
		}
	}
}

// timerLoop sends pings and watches the heartbeat, idle and lag limits.
// It sleeps until the earliest of them could fire, or, while written data
// may wait in the socket, until the stall guard's next look.
func (s *session) timerLoop() {
	cfg := s.cfg
	nextPing := s.now().Add(cfg.PingInterval)
	var nextCheck time.Time
	var pending, stalled bool // what the guard saw last
	var unstalled int64       // unix nanos: when the guard last saw a stall end
	t := time.NewTimer(0)     // the first pass schedules the real wake-up
	defer t.Stop()
	for {
		select {
		case <-s.ended:
			return
		case <-t.C:
		case <-s.q.kick:
		case <-s.wroteC:
		}
		now := s.now()
		if s.guard != nil && !now.Before(nextCheck) {
			nextCheck = now.Add(s.guard.Interval())
			if s.wrote.Swap(false) || pending {
				st, err := s.guard.Check()
				if err != nil {
					st = conn.Stall{} // closed: the reader or writer reports why
				}
				if stalled && !st.Stalled {
					unstalled = now.UnixNano()
				}
				pending, stalled = st.Pending, st.Stalled
			}
		}
		// A peer that is alive but not reading (its window is closed and
		// its kernel answers ours) cannot read our pings either: while a
		// message waits for it, MaxLag decides, not the heartbeat; once it
		// reads again it gets a full PingTimeout to answer.
		deferBeat := stalled && cfg.MaxLag > 0 && !s.q.oldest().IsZero()
		beatAt := time.Unix(0, max(s.lastRecv.Load(), unstalled)).Add(cfg.PingTimeout)
		if late := now.Sub(beatAt); late >= 0 && !deferBeat {
			s.decide(conn.ReasonHeartbeatTimeout, conn.CloseReset, late, nil)
			return
		}
		idleAt := time.Unix(0, s.lastApp.Load()).Add(cfg.IdleTimeout)
		if cfg.IdleTimeout > 0 && !now.Before(idleAt) {
			s.decide(conn.ReasonIdleTimeout, cfg.IdleCloseMode, now.Sub(idleAt),
				func() []byte {
					return errFrame("", CodeIdleTimeout, "no application data for "+cfg.IdleTimeout.String())
				})
			return
		}
		var lagAt time.Time
		if oldest := s.q.oldest(); cfg.MaxLag > 0 && !oldest.IsZero() {
			lagAt = oldest.Add(cfg.MaxLag)
			if !now.Before(lagAt) {
				s.decide(conn.ReasonSlowConsumer, conn.CloseGraceful, now.Sub(lagAt), s.slowFrame)
				return
			}
		}
		if !now.Before(nextPing) {
			id := "s" + strconv.FormatUint(s.pings.Add(1), 10)
			s.q.forceCtrl(item{frame: encode(pingFrame{Type: TypePing, ID: id})})
			nextPing = now.Add(cfg.PingInterval)
		}
		next := nextPing
		if !deferBeat {
			next = earliest(next, beatAt)
		}
		if s.guard != nil && (pending || s.wrote.Load()) {
			next = earliest(next, nextCheck)
		}
		if cfg.IdleTimeout > 0 {
			next = earliest(next, time.Unix(0, s.lastApp.Load()).Add(cfg.IdleTimeout))
		}
		if !lagAt.IsZero() {
			next = earliest(next, lagAt)
		}
		t.Reset(max(next.Sub(now), time.Millisecond))
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// slowFrame names, per subscribed channel, the last cursor written to the
// client, so that it resumes there.
func (s *session) slowFrame() []byte {
	s.mu.Lock()
	cursors := make(map[string]string, len(s.delivered))
	for ch, c := range s.delivered {
		cursors[ch] = string(c)
	}
	s.mu.Unlock()
	return encode(errorFrame{
		Type: TypeError, Code: CodeSlowConsumer, Cursors: cursors,
		Message: "fell behind by more than " + s.cfg.MaxLag.String() + "; resume each channel after its cursor",
	})
}

// goWork starts f as request work unless the session is ending.
func (s *session) goWork(f func()) bool {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	if s.stopping {
		return false
	}
	s.work.Go(f)
	return true
}

// ReasonOf classifies a socket error that ended a read or a write, for
// transports' Conn.Reason: ECONNRESET is reset, ETIMEDOUT (keepalive or
// TCP_USER_TIMEOUT gave up) timeout, EOF and EPIPE closed. It returns ""
// for anything else; the Session then reports closed for a read and
// write-failed for a write.
func ReasonOf(err error) conn.Reason {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return conn.ReasonReset
	case errors.Is(err, syscall.ETIMEDOUT):
		return conn.ReasonTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return conn.ReasonClosed
	}
	return ""
}
