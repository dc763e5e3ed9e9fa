package session

import (
	"context"
	"log/slog"

	"github.com/tether-run/tether/wire"
)

// This file is what an Extension may do with a Session.

// Context ends once the session's end is decided: work for the session
// should stop then.
func (s *Session) Context() context.Context { return s.ctx }

// Logger is the Core's logger.
func (s *Session) Logger() *slog.Logger { return s.c.log }

// Reply queues the success answer r (its Type and OK are set here),
// waiting for room in the control lane.
func (s *Session) Reply(r wire.Reply) {
	r.Type, r.OK = wire.TypeReply, true
	s.q.pushCtrl(s.ctx, item{frame: s.f.Encode(r), app: true})
}

// ReplyError queues an error answer to request id.
func (s *Session) ReplyError(id string, code wire.Code, msg string) {
	s.q.pushCtrl(s.ctx, item{frame: s.f.Encode(errEvent(id, code, msg)), app: true})
}

// StoreError answers request id with the wire code of a storage error,
// logging internal ones; it answers nothing once the session is ending.
func (s *Session) StoreError(id string, err error) {
	if s.ctx.Err() != nil {
		return // ending: no one to answer
	}
	code, msg := StoreCode(err)
	if code == wire.CodeInternal {
		s.c.log.Error("request failed", "id", id, "err", err)
	}
	s.ReplyError(id, code, msg)
}

// Push queues an event the server sends unasked (a worker's job frames)
// on the control lane, past the byte bound, so that the caller never
// waits on a slow client; the caller bounds how many it pushes. It
// reports false once the session is ending.
func (s *Session) Push(ev any) bool {
	if s.ended.Load() {
		return false
	}
	return s.q.forceCtrl(item{frame: s.f.Encode(ev), app: true})
}
