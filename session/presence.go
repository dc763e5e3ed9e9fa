package session

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/tether-run/tether/wire"
)

// PresenceUnsubscribed is the reason of a leave event when the connection
// unsubscribed (or a refreshed token no longer allowed the channel);
// otherwise a leave carries the connection's end reason.
const PresenceUnsubscribed = "unsubscribed"

// Present is one subscription of a channel, as GET
// /v1/channels/{ch}/presence lists it.
type Present struct {
	Sub       string    `json:"sub"`
	Conn      string    `json:"conn"`
	Transport string    `json:"transport"`
	Since     time.Time `json:"since"`
}

// presence knows who is subscribed to each channel, over WebSocket, TCP
// and SSE (a long-poll is a request, not a presence), and sends join and
// leave events to the subscriptions that asked for them. Events go on
// the control lane only if it has room: a client whose queue is full
// misses them (presence events are a hint; the list is the truth), so
// that a busy channel never blocks or grows anyone's queue.
type presence struct {
	mu    sync.Mutex
	chans map[string]map[*Session]*presenceEntry // guarded by mu; entries removed when empty
}

type presenceEntry struct {
	since time.Time
	watch bool // sends the channel's presence events to this session
}

// join records s as subscribed to channel and tells the watchers.
func (p *presence) join(s *Session, channel string, watch bool) {
	now := s.now()
	p.mu.Lock()
	m := p.chans[channel]
	if m == nil {
		m = map[*Session]*presenceEntry{}
		p.chans[channel] = m
	}
	m[s] = &presenceEntry{since: now, watch: watch}
	watchers := p.watchersLocked(channel, s)
	p.mu.Unlock()
	p.tell(watchers, s, channel, wire.PresenceJoin, "", now)
}

// leave records that s left channel for reason, and tells the watchers.
func (p *presence) leave(s *Session, channel, reason string) {
	p.mu.Lock()
	m := p.chans[channel]
	if _, ok := m[s]; !ok {
		p.mu.Unlock()
		return
	}
	delete(m, s)
	if len(m) == 0 {
		delete(p.chans, channel)
	}
	watchers := p.watchersLocked(channel, s)
	p.mu.Unlock()
	p.tell(watchers, s, channel, wire.PresenceLeave, reason, s.now())
}

// leaveAll records that the ended session s left every channel.
func (p *presence) leaveAll(s *Session, reason string) {
	for _, ch := range s.channels() {
		p.leave(s, ch, reason)
	}
}

// watchersLocked lists the sessions, but skip, that watch channel. p.mu
// is held.
func (p *presence) watchersLocked(channel string, skip *Session) []*Session {
	var out []*Session
	for w, e := range p.chans[channel] {
		if e.watch && w != skip {
			out = append(out, w)
		}
	}
	return out
}

func (p *presence) tell(watchers []*Session, who *Session, channel, event, reason string, at time.Time) {
	if len(watchers) == 0 {
		return
	}
	info := who.h.Info()
	ev := wire.Presence{
		Type: wire.TypePresence, Channel: channel, Event: event,
		Sub: info.Sub, Conn: info.ID, Transport: string(info.Transport), Reason: reason, Time: at.UTC(),
	}
	for _, w := range watchers {
		if f := w.f.Encode(ev); f != nil {
			w.q.tryCtrl(item{frame: f, app: true})
		}
	}
}

// Presence lists who is subscribed to channel on this node, oldest
// first. The caller checks that the asker may read the channel
// (Authorize, OpSubscribe).
func (c *Core) Presence(channel string) []Present {
	c.presence.mu.Lock()
	type one struct {
		s     *Session
		since time.Time
	}
	var ss []one
	for s, e := range c.presence.chans[channel] {
		ss = append(ss, one{s, e.since})
	}
	c.presence.mu.Unlock()
	out := make([]Present, 0, len(ss))
	for _, o := range ss {
		info := o.s.h.Info()
		out = append(out, Present{Sub: info.Sub, Conn: info.ID, Transport: string(info.Transport), Since: o.since.UTC()})
	}
	slices.SortFunc(out, func(a, b Present) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return cmp.Compare(a.Conn, b.Conn)
	})
	return out
}
