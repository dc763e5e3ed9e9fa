package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/latch"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// BufferedReader is an optional interface of a FramedTransport: Buffered
// reports whether the transport holds bytes it read from the socket and
// has not yet returned as frames (a tls.Conn's decrypted bytes count).
// With it, and a socket conn.Ready can watch, the session reads only while
// there is something to read: no goroutine waits on an idle connection.
// Without it, a reader goroutine blocks in ReadFrame for the connection's
// life.
type BufferedReader interface {
	Buffered() bool
}

// reader is a framed session's reader. With readiness (ready not nil), a
// reader goroutine runs only while there is something to read: it reads
// and dispatches frames while the transport holds bytes, then arms ready
// and exits; ready's callback starts the next. Without, one goroutine
// reads for the connection's life.
type reader struct {
	t     FramedTransport
	buf   BufferedReader // nil without readiness
	ready *conn.Ready    // nil without readiness

	mu      sync.Mutex
	running bool        // guarded by mu; a reader goroutine runs
	stopped bool        // guarded by mu; no reader starts any more
	done    latch.Latch // guarded by mu; fires once stopped and no reader runs
}

// newReader prepares the reader of s; launchReader starts it.
func (s *Session) newReader(t FramedTransport) {
	r := &reader{t: t}
	if b, ok := t.(BufferedReader); ok && t.NetConn() != nil {
		// The callback takes r, not s.rd: the poller's goroutine that
		// starts it has synchronised with NewReady only.
		if w, err := conn.NewReady(t.NetConn(), func() { s.readable(r) }); err == nil {
			r.buf, r.ready = b, w
		} else {
			s.c.log.Debug("no readiness: a reader goroutine per connection", "err", err)
		}
	}
	s.rd = r
}

// launchReader serves first (a frame the transport read already, or nil)
// and then reads: at once if the transport holds bytes or has no
// readiness, else once the socket is readable.
func (s *Session) launchReader(first []byte) {
	r := s.rd
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	if r.ready == nil || first != nil || r.buf.Buffered() {
		r.running = true
		r.mu.Unlock()
		go s.readRun(first)
		return
	}
	err := r.ready.Arm()
	if err != nil {
		r.running = true // until the end is decided
	}
	r.mu.Unlock()
	if err != nil {
		s.readFailed(r.t, err)
		s.readerExit()
	}
}

// readable is ready's callback: the socket has something to read.
func (s *Session) readable(r *reader) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.running = true
	r.mu.Unlock()
	s.readRun(nil)
}

// readRun serves first, if not nil, and then reads and dispatches frames
// until the transport holds none and the reader armed ready, or the
// connection ends. It reads at least one frame unless first was given:
// it runs because the transport holds bytes or the socket is readable.
func (s *Session) readRun(first []byte) {
	r := s.rd
	look := first != nil // whether to look before reading
	if first != nil {
		s.h.Count(len(first), 0)
		if !s.dispatch(first) {
			s.readerExit()
			return
		}
	}
	for {
		if look && r.ready != nil && !r.buf.Buffered() {
			s.rearm()
			return
		}
		look = true
		// Not s.ctx: a WebSocket read cancelled by its context closes the
		// connection, and a graceful close still reads the peer's goodbye.
		// Closing the socket ends the read.
		b, err := r.t.ReadFrame(context.Background())
		if err != nil {
			s.readFailed(r.t, err)
			s.readerExit()
			return
		}
		if b == nil {
			continue // only frames the transport handles itself (a WebSocket ping): look again
		}
		s.lastRecv.Store(s.now().UnixNano())
		s.h.Count(len(b), 0)
		if !s.dispatch(b) {
			s.readerExit()
			return
		}
	}
}

// rearm ends the reader's turn: it arms ready, so that the next bytes
// start another; or, when ready cannot be armed (the socket is closed:
// the peer left or the session closed it), it decides the end as a
// failed read would.
func (s *Session) rearm() {
	r := s.rd
	r.mu.Lock()
	if r.stopped {
		r.running = false
		r.done.Fire()
		r.mu.Unlock()
		return
	}
	// Arm under mu: stopReader, which takes mu, then Stops ready, so no
	// callback of this Arm runs after the reader stopped. A callback may
	// start at once (level-triggered): it waits for mu, then runs.
	err := r.ready.Arm()
	if err == nil {
		r.running = false
	}
	r.mu.Unlock()
	if err != nil {
		s.readFailed(r.t, err)
		s.readerExit()
	}
}

// readerExit ends a reader goroutine for good.
func (s *Session) readerExit() {
	r := s.rd
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = false
	if r.stopped {
		r.done.Fire()
	}
}

// stopReader stops the reader once the connection is closed: no reader
// starts after it, and it waits for a running one (which the closed
// socket ends).
func (s *Session) stopReader() {
	r := s.rd
	r.mu.Lock()
	r.stopped = true
	if !r.running {
		r.done.Fire()
	}
	done := r.done.Wait()
	r.mu.Unlock()
	if r.ready != nil {
		r.ready.Stop()
	}
	<-done
}

// readFailed decides the end after a read failed (or readiness could not
// be armed): a frame too large or not UTF-8 is a protocol error; anything
// else is how the peer left.
func (s *Session) readFailed(t FramedTransport, err error) {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		msg := "frame over " + strconv.Itoa(s.c.cfg.MaxFrameSize) + " bytes"
		s.protocolError(wire.CodeFrameTooLarge, msg)
		return
	case errors.Is(err, wire.ErrInvalidUTF8):
		s.protocolError(wire.CodeInvalidUTF8, "a frame is not valid UTF-8")
		return
	}
	reason := t.Reason(err)
	if reason == "" {
		reason = conn.ReasonClosed
	}
	s.decide(ending{reason: reason})
}

// protocolError ends the connection after a frame it cannot trust: the
// error frame is flushed within abortFlush and the transport aborts
// (Aborter), reading nothing more of what the peer sends.
func (s *Session) protocolError(code wire.Code, msg string) {
	s.decide(ending{reason: conn.ReasonProtocolError, mode: conn.CloseGraceful, server: true,
		abort: true, final: errEvent("", code, msg)})
}

// startWriter lets the queue start the writer on demand: a push that
// finds no writer running starts one on a new goroutine (writeRun), which
// writes what is queued and exits once the queue is empty. An idle
// session has no writer goroutine. Call it once, after start (the writer
// counts what it writes in the registry.Handle). waitWriter returns once
// the queue is closed and drained and the writer has exited.
func (s *Session) startWriter() {
	s.q.enable(func() { go s.writeRun() })
}

// waitWriter waits until nothing more will be written: the queue is closed
// (by the wind-up, or a failed write) and drained, and no writer runs.
func (s *Session) waitWriter() { <-s.q.stoppedC() }

// writeLoop runs the writer until the queue is closed and drained: the
// blocking form, for Stream.
func (s *Session) writeLoop() {
	s.startWriter()
	s.waitWriter()
}

// writeRun writes queued frames until the queue is empty (the writer's
// turn ends; the next push starts another) or closed and drained, or a
// write fails. The queue starts it on its own goroutine.
//
// Frames popped while more are queued are written with flush false, so
// that the transport sends everything queued at one wake-up in one write;
// if the queue turns out empty after all (an unsubscribe dropped its
// frames), idle flushes what the transport holds before the turn ends.
func (s *Session) writeRun() {
	// Not s.ctx, which ends before a graceful close's flush.
	ctx := context.Background()
	pending := false // the transport holds frames not yet flushed
	var flushErr error
	idle := func() {
		pending = false
		flushErr = s.t.WriteFrame(ctx, nil, true)
	}
	for {
		f := idle
		if !pending {
			f = nil
		}
		it, more, st := s.q.next(f)
		if flushErr != nil {
			if st == popItem {
				s.q.written()
			}
			s.writeFailed(flushErr, st == popItem)
			return
		}
		if st != popItem {
			return
		}
		err := s.t.WriteFrame(ctx, it.frame, !more)
		pending = more
		s.q.written()
		if err != nil {
			s.writeFailed(err, true)
			return
		}
		s.wroteFrame(it)
	}
}

// wroteFrame records a frame written: the clocks, the stall guard's
// first look, the byte count, the lag clock and the delivered cursor.
func (s *Session) wroteFrame(it item) {
	now := s.now().UnixNano()
	s.lastWrite.Store(now)
	if !s.wrote.Swap(true) && s.guard != nil {
		s.wroteData() // the stall guard looks at the socket from now on
	}
	s.h.Count(0, len(it.frame))
	if it.app {
		s.lastApp.Store(now)
	}
	if !it.since.IsZero() && s.guard != nil {
		s.unread.CompareAndSwap(0, it.since.UnixNano())
	}
	if it.cursor != "" {
		s.mu.Lock()
		if sb := s.subs.get(it.channel); sb != nil && sb.began {
			sb.delivered = it.cursor
		}
		s.mu.Unlock()
	}
}

// writeFailed ends the connection after a failed write. writer says the
// caller still holds the writer's turn, which it ends.
func (s *Session) writeFailed(err error, writer bool) {
	reason := s.t.Reason(err)
	if reason == "" {
		reason = conn.ReasonWriteFailed
	}
	s.decide(ending{reason: reason})
	s.q.close(true)
	if writer {
		s.q.quit()
	}
}

// dispatch serves one client frame on the reader goroutine. Requests that
// touch storage run on their own goroutine, so that many are in flight and
// their replies interleave. It reports false when the connection is
// ending.
func (s *Session) dispatch(b []byte) bool {
	f, err := wire.DecodeClient(b)
	switch {
	case errors.Is(err, wire.ErrInvalidUTF8):
		s.protocolError(wire.CodeInvalidUTF8, "a frame is not valid UTF-8")
		return false
	case errors.Is(err, wire.ErrBadFrame):
		s.protocolError(wire.CodeBadFrame, wire.ClientMessage(err))
		return false
	case err != nil:
		s.ReplyError(f.ID, wire.CodeBadRequest, wire.ClientMessage(err))
		return true
	}
	switch f.Type {
	case wire.TypePong:
	case wire.TypeBye:
		// The client acknowledges a shutdown notice (or just leaves).
		reason := conn.ReasonClosed
		if s.notified.Load() {
			reason = conn.ReasonShutdown
		}
		s.decide(ending{reason: reason, mode: conn.CloseGraceful})
		return false
	case wire.TypePing:
		if !wire.ValidID(f.ID) {
			s.ReplyError(f.ID, wire.CodeBadRequest, "ping needs an id of 1 to 128 bytes")
			return true
		}
		s.q.pushCtrl(s.ctx, item{frame: s.f.Encode(wire.Ping{Type: wire.TypePong, ID: f.ID})})
	case wire.TypeSubscribe, wire.TypeUnsubscribe, wire.TypePublish, wire.TypeRefresh:
		s.request(f.Type, f.ID, s.clientWork(f))
	case wire.TypeHello:
		s.ReplyError(f.ID, wire.CodeBadRequest, "hello is only valid as the first frame on TCP")
	default:
		s.extension(f, b)
	}
	return true
}

// extension hands a frame of another type to the Extension serving it.
func (s *Session) extension(f wire.ClientFrame, b []byte) {
	x := s.c.exts[f.Type]
	switch {
	case x != nil:
		frame := append([]byte(nil), b...) // the reader's buffer is reused
		s.request(f.Type, f.ID, func(release func()) {
			defer release()
			s.usedExt.Store(true)
			x.Serve(s, f.Type, f.ID, frame)
		})
	case f.Type == wire.TypeWorker:
		s.ReplyError(f.ID, wire.CodeUnknownType, "this server runs no jobs")
	case wire.IsWorkerRequest(f.Type):
		s.ReplyError(f.ID, wire.CodeNotWorker, f.Type+" before a successful worker request")
	default:
		s.ReplyError(f.ID, wire.CodeUnknownType, "unknown frame type "+quote(f.Type))
	}
}

// request starts one request's handler, if a slot is free. work runs on
// its own goroutine and must call release once it has answered.
func (s *Session) request(typ, id string, work func(release func())) {
	if !wire.ValidID(id) {
		s.ReplyError(id, wire.CodeBadRequest, typ+" needs an id of 1 to 128 bytes")
		return
	}
	if s.inFlight.Add(1) > int32(s.c.cfg.MaxInFlight) {
		s.inFlight.Add(-1)
		s.ReplyError(id, wire.CodeTooManyRequests, "too many requests in flight")
		return
	}
	s.lastApp.Store(s.now().UnixNano())
	release := func() { s.inFlight.Add(-1) }
	if !s.goWork(func() { work(release) }) {
		release() // ending: no one to answer
	}
}

// clientWork returns the handler of a subscribe, unsubscribe or publish.
func (s *Session) clientWork(f wire.ClientFrame) func(release func()) {
	switch f.Type {
	case wire.TypeSubscribe:
		return func(release func()) { s.subscribe(f, release) }
	case wire.TypeUnsubscribe:
		return func(release func()) { defer release(); s.unsubscribe(f) }
	case wire.TypeRefresh:
		return func(release func()) { defer release(); s.refresh(f) }
	}
	return func(release func()) { defer release(); s.publish(f) }
}

// subscribe starts a subscription, answers, frees the request's slot, and
// then streams the channel on the request's goroutine.
func (s *Session) subscribe(f wire.ClientFrame, release func()) {
	sb, err := s.addSub(f.Channel)
	if err != nil {
		release()
		s.replyErr(f.ID, err)
		return
	}
	start, first, err := sb.open(f.After)
	if err != nil {
		s.removeSub(sb)
		sb.finish()
		release()
		code, msg := StoreCode(err)
		s.ReplyError(f.ID, code, msg)
		return
	}
	s.began(sb, start, f.Presence)
	s.Reply(wire.Reply{ID: f.ID, Cursor: string(start)})
	release()
	sb.run(start, first, false)
}

// addSub registers a subscription of channel, or says why not: a denial
// (*auth.Error, *limits.Error) or a *wire.ErrorFrame.
func (s *Session) addSub(channel string) (*sub, error) {
	if !store.ValidChannel(channel) {
		return nil, &wire.ErrorFrame{Code: wire.CodeBadChannel, Message: "the channel name is not valid"}
	}
	if err := s.Authorize(Act{Op: OpSubscribe, Channel: channel}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs.get(channel) != nil {
		return nil, &wire.ErrorFrame{Code: wire.CodeAlreadySubscribed, Message: "already subscribed to " + channel}
	}
	// The limits count (and refuse, with a metric) first; the session's
	// own bound is for a Core without limits.
	if s.lease != nil {
		if err := s.lease.Subscribe(); err != nil {
			return nil, err
		}
	}
	if s.subs.len() >= s.c.cfg.MaxSubscriptions {
		if s.lease != nil {
			s.lease.Unsubscribe()
		}
		return nil, &wire.ErrorFrame{Code: wire.CodeTooManySubscriptions, Message: "too many subscriptions"}
	}
	sb := newSub(s, channel)
	s.subs.put(sb)
	return sb, nil
}

// replyErr answers request id with the code of err: a denial, a
// *wire.ErrorFrame, or a store error.
func (s *Session) replyErr(id string, err error) {
	if _, _, ok := AuthCode(err); ok {
		s.ReplyDenied(id, err)
		return
	}
	var ef *wire.ErrorFrame
	if errors.As(err, &ef) {
		s.ReplyError(id, ef.Code, ef.Message)
		return
	}
	s.StoreError(id, err)
}

// began records where a subscription starts, tells the followers and
// the channel's presence (watch: the subscription wants presence events).
func (s *Session) began(sb *sub, start store.Cursor, watch bool) {
	s.mu.Lock()
	live := s.subs.get(sb.channel) == sb // not unsubscribed meanwhile
	if live {
		sb.began, sb.delivered = true, start
	}
	s.mu.Unlock()
	s.setChannels()
	s.follow(sb)
	if live {
		s.c.presence.join(s, sb.channel, watch)
	}
}

func (s *Session) unsubscribe(f wire.ClientFrame) {
	s.mu.Lock()
	sb := s.subs.get(f.Channel)
	if sb != nil {
		s.subs.del(f.Channel)
	}
	s.mu.Unlock()
	if sb == nil {
		s.ReplyError(f.ID, wire.CodeNotSubscribed, "not subscribed to "+quote(f.Channel))
		return
	}
	sb.end()
	sb.wait()
	sb.stopFollow(false)
	s.unsubscribed(f.Channel)
	// The reply is queued after the drop, so no message of the channel
	// follows it.
	s.q.dropMessages(f.Channel)
	s.setChannels()
	s.Reply(wire.Reply{ID: f.ID})
}

func (s *Session) publish(f wire.ClientFrame) {
	if !store.ValidChannel(f.Channel) {
		s.ReplyError(f.ID, wire.CodeBadChannel, "the channel name is not valid")
		return
	}
	if err := s.Authorize(Act{Op: OpPublish, Channel: f.Channel}); err != nil {
		s.ReplyDenied(f.ID, err)
		return
	}
	if err := s.c.AllowPublish(s.Principal()); err != nil {
		s.ReplyDenied(f.ID, err)
		return
	}
	switch {
	case len(f.Data) == 0:
		s.ReplyError(f.ID, wire.CodeInvalidJSON, "publish needs data: one JSON value")
		return
	case f.IdempotencyKey != "" && !wire.ValidKey(f.IdempotencyKey):
		s.ReplyError(f.ID, wire.CodeBadIdempotencyKey, "idempotency_key must be 1 to 255 bytes of printable ASCII")
		return
	}
	var data bytes.Buffer
	if err := json.Compact(&data, f.Data); err != nil {
		s.ReplyError(f.ID, wire.CodeInvalidJSON, "data is not valid JSON")
		return
	}
	res, err := s.c.store.Append(s.ctx, f.Channel, data.Bytes(), store.AppendOptions{IdempotencyKey: f.IdempotencyKey})
	if err != nil {
		s.StoreError(f.ID, err)
		return
	}
	s.Reply(wire.Reply{ID: f.ID, Cursor: string(res.ID), Duplicate: res.Duplicate})
}

// removeSub forgets sb if it is still the channel's subscription.
func (s *Session) removeSub(sb *sub) {
	s.mu.Lock()
	removed := s.subs.get(sb.channel) == sb
	if removed {
		s.subs.del(sb.channel)
	}
	s.mu.Unlock()
	if removed {
		s.unsubscribed(sb.channel)
	}
	s.setChannels()
}

// unsubscribed gives a subscription's place in the limits back and tells
// the channel's presence.
func (s *Session) unsubscribed(channel string) {
	if s.lease != nil {
		s.lease.Unsubscribe()
	}
	s.c.presence.leave(s, channel, PresenceUnsubscribed)
}

func (s *Session) setChannels() {
	s.mu.Lock()
	chs := make([]string, 0, s.subs.len())
	for sb := range s.subs.all() {
		chs = append(chs, sb.channel)
	}
	s.mu.Unlock()
	s.h.SetChannels(chs)
}

// follow tells the Followers of a subscription; its stopFollow ends it.
func (s *Session) follow(sb *sub) {
	var stops []func(bool)
	for _, f := range s.c.followers {
		if stop := f.Follow(sb.channel); stop != nil {
			stops = append(stops, stop)
		}
	}
	if len(stops) > 0 {
		sb.setUnfollow(func(departed bool) {
			for _, stop := range stops {
				stop(departed)
			}
		})
	}
}

// unfollowAll ends the follows of every subscription when the connection
// ended for reason.
func (s *Session) unfollowAll(reason conn.Reason) {
	s.mu.Lock()
	subs := make([]*sub, 0, s.subs.len())
	for sb := range s.subs.all() {
		subs = append(subs, sb)
	}
	s.mu.Unlock()
	for _, sb := range subs {
		sb.stopFollow(departed(reason))
	}
}

func errEvent(id string, code wire.Code, msg string) wire.ErrorFrame {
	return wire.ErrorFrame{Type: wire.TypeError, ID: id, Code: code, Message: msg}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
