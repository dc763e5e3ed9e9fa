package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// readLoop reads and dispatches frames until the connection ends.
func (s *Session) readLoop(t FramedTransport, first []byte) {
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
		b, err := t.ReadFrame(context.Background())
		if err != nil {
			switch {
			case errors.Is(err, ErrFrameTooLarge):
				msg := "frame over " + strconv.Itoa(s.cfg.MaxFrameSize) + " bytes"
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
			return
		}
		s.lastRecv.Store(s.now().UnixNano())
		s.h.Count(len(b), 0)
		if !s.dispatch(b) {
			return
		}
	}
}

// protocolError ends the connection after a frame it cannot trust: the
// error frame is flushed within abortFlush and the transport aborts
// (Aborter), reading nothing more of what the peer sends.
func (s *Session) protocolError(code wire.Code, msg string) {
	s.decide(ending{reason: conn.ReasonProtocolError, mode: conn.CloseGraceful, server: true,
		abort: true, final: errEvent("", code, msg)})
}

// writeLoop writes queued frames until the queue is closed and drained or
// a write fails. It runs on the goroutine that serves the connection.
//
// Frames popped while more are queued are written with flush false, so
// that the transport sends everything queued at one wake-up in one write;
// if the queue turns out empty after all (an unsubscribe dropped its
// frames), idle flushes what the transport holds before pop waits.
func (s *Session) writeLoop() {
	// Not s.ctx, which ends before a graceful close's flush.
	ctx := context.Background()
	pending := false // the transport holds frames not yet flushed
	var flushErr error
	idle := func() {
		pending = false
		flushErr = s.t.WriteFrame(ctx, nil, true)
	}
	for {
		var it item
		var more, ok bool
		if pending {
			it, more, ok = s.q.pop(ctx, idle)
		} else {
			it, more, ok = s.q.pop(ctx, nil)
		}
		if flushErr != nil {
			s.writeFailed(flushErr)
			return
		}
		if !ok {
			if pending {
				s.t.WriteFrame(ctx, nil, true) // what a discarding close left
			}
			return
		}
		err := s.t.WriteFrame(ctx, it.frame, !more)
		pending = more
		s.q.written()
		if err != nil {
			s.writeFailed(err)
			return
		}
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
			if _, ok := s.delivered[it.channel]; ok {
				s.delivered[it.channel] = it.cursor
			}
			s.mu.Unlock()
		}
	}
}

// writeFailed ends the connection after a failed write.
func (s *Session) writeFailed(err error) {
	reason := s.t.Reason(err)
	if reason == "" {
		reason = conn.ReasonWriteFailed
	}
	s.decide(ending{reason: reason})
	s.q.close(true)
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
	select {
	case s.slots <- struct{}{}:
	default:
		s.ReplyError(id, wire.CodeTooManyRequests, "too many requests in flight")
		return
	}
	s.lastApp.Store(s.now().UnixNano())
	release := func() { <-s.slots }
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
	if _, dup := s.subs[channel]; dup {
		return nil, &wire.ErrorFrame{Code: wire.CodeAlreadySubscribed, Message: "already subscribed to " + channel}
	}
	// The limits count (and refuse, with a metric) first; the session's
	// own bound is for a Core without limits.
	if s.lease != nil {
		if err := s.lease.Subscribe(); err != nil {
			return nil, err
		}
	}
	if len(s.subs) >= s.cfg.MaxSubscriptions {
		if s.lease != nil {
			s.lease.Unsubscribe()
		}
		return nil, &wire.ErrorFrame{Code: wire.CodeTooManySubscriptions, Message: "too many subscriptions"}
	}
	sb := newSub(s, channel)
	s.subs[channel] = sb
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
	live := s.subs[sb.channel] == sb // not unsubscribed meanwhile
	if live {
		s.delivered[sb.channel] = start
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
	sb := s.subs[f.Channel]
	if sb != nil {
		delete(s.subs, f.Channel)
		delete(s.delivered, f.Channel)
	}
	s.mu.Unlock()
	if sb == nil {
		s.ReplyError(f.ID, wire.CodeNotSubscribed, "not subscribed to "+quote(f.Channel))
		return
	}
	sb.cancel()
	<-sb.done
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
	removed := s.subs[sb.channel] == sb
	if removed {
		delete(s.subs, sb.channel)
		delete(s.delivered, sb.channel)
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
	chs := make([]string, 0, len(s.subs))
	for ch := range s.subs {
		chs = append(chs, ch)
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
	subs := make([]*sub, 0, len(s.subs))
	for _, sb := range s.subs {
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
