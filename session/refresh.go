package session

import (
	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/wire"
)

// ReasonTokenExpired ends a WebSocket, TCP or SSE connection whose token
// expired before the client refreshed it (auth.EndTokenExpired).
const ReasonTokenExpired = conn.Reason(auth.EndTokenExpired)

// refresh serves a refresh request: the connection goes on with a fresh
// token of the same sub (its permissions and expiry). Subscriptions the
// new token no longer allows are ended, each with a forbidden error frame
// naming its channel. A refused refresh leaves the old token in place,
// so the connection still ends when that one expires.
func (s *Session) refresh(f wire.ClientFrame) {
	next, err := s.c.Authenticate(f.Token)
	if err == nil {
		err = s.Principal().CheckRefresh(next)
	}
	if err != nil {
		s.ReplyDenied(f.ID, err)
		return
	}
	s.p.Store(next)
	if exp := next.Expires(); !exp.IsZero() {
		s.wake(exp) // no-op unless earlier than the timer is armed for
	}
	s.Reply(wire.Reply{ID: f.ID})
	for _, ch := range s.channels() {
		if err := s.Authorize(Act{Op: OpSubscribe, Channel: ch}); err != nil {
			s.endSub(ch, err)
		}
	}
}

// channels lists the subscribed channels.
func (s *Session) channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	chs := make([]string, 0, s.subs.len())
	for sb := range s.subs.all() {
		chs = append(chs, sb.channel)
	}
	return chs
}

// endSub ends the subscription of channel because of a denial, telling
// the client with an error frame naming the channel.
func (s *Session) endSub(channel string, denial error) {
	s.mu.Lock()
	sb := s.subs.get(channel)
	if sb != nil {
		s.subs.del(channel)
	}
	s.mu.Unlock()
	if sb == nil {
		return
	}
	sb.end()
	sb.wait()
	sb.stopFollow(false)
	s.unsubscribed(channel)
	s.q.dropMessages(channel)
	s.setChannels()
	code, msg, _ := AuthCode(denial)
	f := errEvent("", code, msg)
	f.Channel = channel
	s.q.pushCtrl(s.ctx, item{frame: s.f.Encode(f), app: true})
}
