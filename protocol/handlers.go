package protocol

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/store"
)

// dispatch serves one client frame on the reader goroutine. Requests that
// touch storage run on their own goroutine, so that many are in flight and
// their replies interleave. It reports false when the connection is
// ending.
func (s *session) dispatch(b []byte) bool {
	f, err := Decode(b)
	switch {
	case errors.Is(err, ErrBadFrame):
		msg := err.Error()
		s.decide(conn.ReasonProtocolError, conn.CloseGraceful, 0,
			func() []byte { return errFrame("", CodeBadFrame, msg) })
		return false
	case err != nil:
		s.replyErr(f.ID, CodeBadRequest, err.Error())
		return true
	}
	switch f.Type {
	case TypePong:
	case TypeBye:
		// The client acknowledges a shutdown notice (or just leaves).
		reason := conn.ReasonClosed
		if s.notified.Load() {
			reason = conn.ReasonShutdown
		}
		s.decide(reason, conn.CloseGraceful, 0, nil)
		return false
	case TypePing:
		if f.ID == "" || len(f.ID) > MaxIDLen {
			s.replyErr(f.ID, CodeBadRequest, "ping needs an id of 1 to 128 bytes")
			return true
		}
		s.q.pushCtrl(s.ctx, item{frame: encode(pingFrame{Type: TypePong, ID: f.ID})})
	case TypeSubscribe, TypeUnsubscribe, TypePublish,
		TypeWorker, TypeJobHeartbeat, TypeJobProgress, TypeJobDone, TypeJobRelease, TypeDrain:
		s.request(f)
	case TypeHello:
		s.replyErr(f.ID, CodeBadRequest, "hello is only valid as the first frame on TCP")
	default:
		s.replyErr(f.ID, CodeUnknownType, "unknown frame type "+quote(f.Type))
	}
	return true
}

// request starts one request's handler, if a slot is free.
func (s *session) request(f Frame) {
	if f.ID == "" || len(f.ID) > MaxIDLen {
		s.replyErr(f.ID, CodeBadRequest, f.Type+" needs an id of 1 to 128 bytes")
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.replyErr(f.ID, CodeTooManyRequests, "too many requests in flight")
		return
	}
	s.lastApp.Store(s.now().UnixNano())
	release := func() { <-s.slots }
	var work func()
	switch f.Type {
	case TypeSubscribe:
		work = func() { s.subscribe(f, release) }
	case TypeUnsubscribe:
		work = func() { defer release(); s.unsubscribe(f) }
	case TypePublish:
		work = func() { defer release(); s.publish(f) }
	default:
		do := s.workerWork(f)
		work = func() { defer release(); do() }
	}
	if !s.goWork(work) {
		release() // ending: no one to answer
	}
}

func (s *session) reply(r reply) {
	r.Type, r.OK = TypeReply, true
	s.q.pushCtrl(s.ctx, item{frame: encode(r), app: true})
}

func (s *session) replyErr(id string, code Code, msg string) {
	s.q.pushCtrl(s.ctx, item{frame: errFrame(id, code, msg), app: true})
}

// subscribe starts a subscription. Its goroutine answers the request, then
// streams the channel; release frees the request's slot once answered.
func (s *session) subscribe(f Frame, release func()) {
	if !store.ValidChannel(f.Channel) {
		release()
		s.replyErr(f.ID, CodeBadChannel, "the channel name is not valid")
		return
	}
	s.mu.Lock()
	_, dup := s.subs[f.Channel]
	full := len(s.subs) >= s.cfg.MaxSubscriptions
	var sb *sub
	if !dup && !full {
		sb = newSub(s, f.Channel)
		s.subs[f.Channel] = sb
	}
	s.mu.Unlock()
	switch {
	case dup:
		release()
		s.replyErr(f.ID, CodeAlreadySubscribed, "already subscribed to "+f.Channel)
		return
	case full:
		release()
		s.replyErr(f.ID, CodeTooManySubscriptions, "too many subscriptions")
		return
	}
	defer close(sb.done)
	start, first, err := sb.open(f.After)
	if err != nil {
		s.removeSub(sb)
		release()
		code, msg := storeCode(err)
		s.replyErr(f.ID, code, msg)
		return
	}
	s.mu.Lock()
	if s.subs[f.Channel] == sb { // not unsubscribed meanwhile
		s.delivered[f.Channel] = start
	}
	s.mu.Unlock()
	s.setChannels()
	s.follow(sb)
	s.reply(reply{ID: f.ID, Cursor: string(start)})
	release()
	sb.stream(start, first)
}

func (s *session) unsubscribe(f Frame) {
	s.mu.Lock()
	sb := s.subs[f.Channel]
	if sb != nil {
		delete(s.subs, f.Channel)
		delete(s.delivered, f.Channel)
	}
	s.mu.Unlock()
	if sb == nil {
		s.replyErr(f.ID, CodeNotSubscribed, "not subscribed to "+quote(f.Channel))
		return
	}
	sb.cancel()
	<-sb.done
	sb.stopFollow(false)
	// The reply is queued after the drop, so no message of the channel
	// follows it.
	s.q.dropMessages(f.Channel)
	s.setChannels()
	s.reply(reply{ID: f.ID})
}

func (s *session) publish(f Frame) {
	switch {
	case !store.ValidChannel(f.Channel):
		s.replyErr(f.ID, CodeBadChannel, "the channel name is not valid")
		return
	case len(f.Data) == 0:
		s.replyErr(f.ID, CodeInvalidJSON, "publish needs data: one JSON value")
		return
	case f.IdempotencyKey != "" && !validKey(f.IdempotencyKey):
		s.replyErr(f.ID, CodeBadIdempotencyKey, "idempotency_key must be 1 to 255 bytes of printable ASCII")
		return
	}
	var data bytes.Buffer
	if err := json.Compact(&data, f.Data); err != nil {
		s.replyErr(f.ID, CodeInvalidJSON, "data is not valid JSON")
		return
	}
	res, err := s.cfg.Store.Append(s.ctx, f.Channel, data.Bytes(), store.AppendOptions{IdempotencyKey: f.IdempotencyKey})
	if err != nil {
		if s.ctx.Err() != nil {
			return // ending: no one to answer
		}
		code, msg := storeCode(err)
		if code == CodeInternal {
			s.cfg.Logger.Error("publish failed", "channel", f.Channel, "err", err)
		}
		s.replyErr(f.ID, code, msg)
		return
	}
	s.reply(reply{ID: f.ID, Cursor: string(res.ID), Duplicate: res.Duplicate})
}

// removeSub forgets sb if it is still the channel's subscription.
func (s *session) removeSub(sb *sub) {
	s.mu.Lock()
	if s.subs[sb.channel] == sb {
		delete(s.subs, sb.channel)
		delete(s.delivered, sb.channel)
	}
	s.mu.Unlock()
	s.setChannels()
}

func (s *session) setChannels() {
	s.mu.Lock()
	chs := make([]string, 0, len(s.subs))
	for ch := range s.subs {
		chs = append(chs, ch)
	}
	s.mu.Unlock()
	s.h.SetChannels(chs)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
