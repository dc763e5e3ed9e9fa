package session

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/wire"
)

// The session's timer is a runtime timer (time.AfterFunc), not a
// goroutine: an idle connection costs no goroutine for its pings,
// heartbeat, idle and lag limits. Each firing runs tick under tmu, which
// also guards the timer's state and the stall guard, and re-arms the
// timer for the earliest moment any limit could fire, or, while written
// data may wait in the socket, for the stall guard's next look. wake
// brings the firing forward when a lag clock starts or data is written,
// only if it is not due earlier anyway: under a fan-out, a message
// queued or written costs no timer operation.

// sessionTimer is a session's timer and its state; a long-poll has none.
type sessionTimer struct {
	tmu   sync.Mutex
	tl    timerState  // guarded by tmu
	dueMu sync.Mutex  // a leaf lock
	timer *time.Timer // guarded by dueMu; set once, by startTimer
	due   time.Time   // guarded by dueMu; when the timer fires; zero while firing
	// timerOff: stopped for good. Guarded by dueMu.
	timerOff bool
	beat     time.Duration // stream: heartbeat comment interval; set before the timer starts
}

// timerState is the timer's own; guarded by sessionTimer.tmu.
type timerState struct {
	nextPing  time.Time
	nextCheck time.Time
	pending   bool  // the guard saw data waiting
	stalled   bool  // the guard saw the peer's window closed
	unstalled int64 // unix nanos: when the guard last saw a stall end
}

// startTimer arms the session's timer; its first firing schedules the
// real wake-up. Called by start (framed) or Stream; a session whose end
// was wound up already gets none.
func (s *Session) startTimer() {
	s.tm.tl.nextPing = s.now().Add(s.pingInterval()) // no firing yet: tmu not needed
	s.q.kick = s.lagStarted                          // before any push
	s.tm.dueMu.Lock()
	defer s.tm.dueMu.Unlock()
	if s.tm.timerOff {
		return
	}
	s.tm.timer = time.AfterFunc(time.Hour, s.onTimer)
	s.tm.due = time.Time{}
	s.tm.timer.Reset(0)
}

// lagStarted is the queue's kick: a lag clock started at since, so a lag
// check is due at since+MaxLag.
func (s *Session) lagStarted(since time.Time) {
	if s.c.cfg.MaxLag > 0 {
		s.wake(since.Add(s.c.cfg.MaxLag))
	}
}

// wrote says data was written: the stall guard must look at the socket
// within its interval.
func (s *Session) wroteData() {
	s.wake(s.now().Add(s.guard.Interval()))
}

// wake makes the timer fire by at (at once for the zero time), unless it
// is armed to fire earlier already: most calls cost an uncontended lock
// and a comparison. Safe from any goroutine, with any lock held but
// dueMu: it does not block.
func (s *Session) wake(at time.Time) {
	s.tm.dueMu.Lock()
	defer s.tm.dueMu.Unlock()
	if s.tm.timer == nil || s.tm.timerOff || !s.tm.due.IsZero() && !at.Before(s.tm.due) {
		return
	}
	s.tm.due = at
	s.tm.timer.Reset(max(time.Until(at), 0))
}

// onTimer is the timer's callback.
func (s *Session) onTimer() {
	s.tm.tmu.Lock()
	defer s.tm.tmu.Unlock()
	s.tm.dueMu.Lock()
	s.tm.due = time.Time{} // firing: a wake while tick runs arms the timer
	s.tm.dueMu.Unlock()
	if s.ended.Load() {
		return
	}
	if next, ok := s.tick(&s.tm.tl); ok {
		if soon := s.now().Add(time.Millisecond); next.Before(soon) {
			next = soon
		}
		s.wake(next)
	}
}

// stopTimer stops the timer and waits for a firing in progress.
func (s *Session) stopTimer() {
	s.tm.dueMu.Lock()
	s.tm.timerOff = true
	t := s.tm.timer
	s.tm.dueMu.Unlock()
	if t == nil {
		return
	}
	t.Stop()
	s.tm.tmu.Lock()
	s.tm.tmu.Unlock() //nolint:staticcheck // an empty critical section: waits out a firing
}

func (s *Session) pingInterval() time.Duration {
	if s.kind == stream {
		return s.tm.beat
	}
	return s.c.cfg.PingInterval
}

// tick runs one pass of the limits and returns when to look again; ok is
// false when it decided the end. s.tm.tmu is held.
func (s *Session) tick(tl *timerState) (next time.Time, ok bool) {
	cfg := &s.c.cfg
	now := s.now()
	s.lookAtSocket(tl, now)
	if !now.Before(tl.nextPing) {
		s.ping(now)
		tl.nextPing = now.Add(s.pingInterval())
	}
	if s.kind == stream {
		// A stream's heartbeat only fills silence.
		if at := time.Unix(0, s.lastWrite.Load()).Add(s.tm.beat); at.After(now) {
			tl.nextPing = at
		}
	}
	next = tl.nextPing
	if exp := s.Principal().Expires(); !exp.IsZero() {
		if !now.Before(exp) {
			s.decide(ending{reason: ReasonTokenExpired, mode: conn.CloseGraceful, noticed: now.Sub(exp), server: true, drop: true,
				final: errEvent("", wire.CodeTokenExpired, "the token expired; connect again with a fresh token, or send refresh before it expires")})
			return next, false
		}
		next = earliest(next, exp)
	}
	if s.kind == framed {
		// A peer that is alive but not reading (its window is closed and
		// its kernel answers ours) cannot read our pings either: while a
		// message waits for it, MaxLag decides, not the heartbeat; once it
		// reads again it gets a full PingTimeout to answer.
		deferBeat := tl.stalled && cfg.MaxLag > 0 && !s.oldest(tl).IsZero()
		beatAt := time.Unix(0, max(s.lastRecv.Load(), tl.unstalled)).Add(cfg.PingTimeout)
		if !now.Before(beatAt) && !deferBeat {
			beatAt = s.kernelHeard(now, beatAt)
		}
		if late := now.Sub(beatAt); late >= 0 && !deferBeat {
			s.decide(ending{reason: conn.ReasonHeartbeatTimeout, mode: conn.CloseReset, noticed: late, server: true})
			return next, false
		}
		if !deferBeat {
			next = earliest(next, beatAt)
		}
		if cfg.IdleTimeout > 0 {
			idleAt := time.Unix(0, s.lastApp.Load()).Add(cfg.IdleTimeout)
			if !now.Before(idleAt) {
				s.decide(ending{reason: conn.ReasonIdleTimeout, mode: cfg.IdleCloseMode, noticed: now.Sub(idleAt), server: true,
					final: errEvent("", wire.CodeIdleTimeout, "no application data for "+cfg.IdleTimeout.String())})
				return next, false
			}
			next = earliest(next, idleAt)
		}
	}
	if oldest := s.oldest(tl); cfg.MaxLag > 0 && !oldest.IsZero() {
		lagAt := oldest.Add(cfg.MaxLag)
		if !now.Before(lagAt) {
			s.decide(ending{reason: conn.ReasonSlowConsumer, mode: conn.CloseGraceful, noticed: now.Sub(lagAt), server: true,
				final: s.slowEvent()})
			return next, false
		}
		next = earliest(next, lagAt)
	}
	if s.guard != nil && (tl.pending || s.wrote.Load()) {
		next = earliest(next, tl.nextCheck)
	}
	return next, true
}

// kernelHeard is asked once no frame came by beatAt (the last frame, or
// the end of a stall, plus PingTimeout): it returns when the heartbeat
// should end the connection, which is later than beatAt while the kernel
// has heard from the peer within PingTimeout (see
// Config.BusyPeerTimeout), but never later than BusyPeerTimeout after
// beatAt's start. s.tmu is held.
func (s *Session) kernelHeard(now, beatAt time.Time) time.Time {
	cfg := &s.c.cfg
	if cfg.BusyPeerTimeout < 0 || s.fromProxy() {
		return beatAt
	}
	data, ack, ok := s.guard.Heard()
	if !ok {
		return beatAt
	}
	limit := beatAt.Add(cfg.BusyPeerTimeout - cfg.PingTimeout)
	heard := now.Add(-min(data, ack)).Add(cfg.PingTimeout)
	if heard.Before(beatAt) {
		return beatAt
	}
	return earliest(heard, limit)
}

// fromProxy reports whether the connection's peer is one of
// Config.Proxies.
func (s *Session) fromProxy() bool {
	if len(s.c.cfg.Proxies) == 0 || s.nc == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(s.nc.RemoteAddr().String())
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range s.c.cfg.Proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ping queues a ping frame, or a stream's heartbeat when nothing was
// written for its interval.
func (s *Session) ping(now time.Time) {
	if s.kind == stream {
		if now.Sub(time.Unix(0, s.lastWrite.Load())) >= s.tm.beat {
			s.q.forceCtrl(item{frame: s.f.Encode(wire.Ping{Type: wire.TypePing})})
		}
		return
	}
	id := "s" + strconv.FormatUint(s.pings.Add(1), 10)
	s.q.forceCtrl(item{frame: s.f.Encode(wire.Ping{Type: wire.TypePing, ID: id})})
}

// oldest is the earliest lag clock of a message not yet delivered: queued
// or waiting to be (queue.oldest) or, while the peer's window is closed,
// written into the socket since the guard last saw it open (unread). The
// writer gathers what is queued into one write, so a stalled peer's
// messages may all sit in the kernel's buffer while the queue is empty:
// they wait for the peer all the same. s.tm.tmu is held.
func (s *Session) oldest(tl *timerState) time.Time {
	t := s.q.oldest()
	if u := s.unread.Load(); tl.stalled && u != 0 && (t.IsZero() || u < t.UnixNano()) {
		t = time.Unix(0, u)
	}
	return t
}

// lookAtSocket runs the stall guard while written data may wait in the
// socket. s.tm.tmu is held.
func (s *Session) lookAtSocket(tl *timerState, now time.Time) {
	if s.guard == nil || now.Before(tl.nextCheck) {
		return
	}
	tl.nextCheck = now.Add(s.guard.Interval())
	if !s.wrote.Swap(false) && !tl.pending {
		return
	}
	st, err := s.guard.Check()
	if err != nil {
		st = conn.Stall{} // closed: the reader or writer reports why
	}
	if tl.stalled && !st.Stalled {
		tl.unstalled = now.UnixNano()
	}
	if !st.Stalled {
		s.unread.Store(0) // the peer reads, or all was delivered
	}
	tl.pending, tl.stalled = st.Pending, st.Stalled
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// slowEvent names, per subscribed channel, the last cursor written to the
// client, so that it resumes there.
func (s *Session) slowEvent() wire.ErrorFrame {
	s.mu.Lock()
	cursors := make(map[string]string, s.subs.len())
	for sb := range s.subs.all() {
		if sb.began {
			cursors[sb.channel] = string(sb.delivered)
		}
	}
	s.mu.Unlock()
	return wire.ErrorFrame{
		Type: wire.TypeError, Code: wire.CodeSlowConsumer, Cursors: cursors,
		Message: "fell behind by more than " + s.c.cfg.MaxLag.String() + "; resume each channel after its cursor",
	}
}
