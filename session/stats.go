package session

import (
	"cmp"
	"slices"
	"time"
)

// This file holds the Core's read-only summaries for an operator's view
// (the admin dashboard): which channels have subscribers, and which
// subscribers fall behind. They read what the presence and the queues
// already keep, under their own locks, one at a time.

// ChannelSubscribers is one channel and its subscriptions on this node
// (WebSocket, TCP, SSE; a long-poll is a request, not a subscription).
type ChannelSubscribers struct {
	Channel     string         `json:"channel"`
	Subscribers int            `json:"subscribers"`
	ByTransport map[string]int `json:"by_transport"`
}

// Subscribed lists the channels with subscribers on this node, the most
// subscribed first (ties by name), at most top of them; other is how many
// were left out. It holds the presence lock while it counts.
func (c *Core) Subscribed(top int) (chans []ChannelSubscribers, other int) {
	c.presence.mu.Lock()
	chans = make([]ChannelSubscribers, 0, len(c.presence.chans))
	for ch, m := range c.presence.chans {
		cs := ChannelSubscribers{Channel: ch, Subscribers: len(m), ByTransport: map[string]int{}}
		for s := range m {
			cs.ByTransport[s.transport()]++
		}
		chans = append(chans, cs)
	}
	c.presence.mu.Unlock()
	slices.SortFunc(chans, func(a, b ChannelSubscribers) int {
		return cmp.Or(cmp.Compare(b.Subscribers, a.Subscribers), cmp.Compare(a.Channel, b.Channel))
	})
	if top >= 0 && len(chans) > top {
		other = len(chans) - top
		chans = chans[:top]
	}
	return chans, other
}

// transport is the session's transport name; its handle's open info
// never changes.
func (s *Session) transport() string { return string(s.h.Info().Transport) }

// Consumer is one subscribed connection and how far behind it is.
type Consumer struct {
	Conn      string `json:"conn"`
	Sub       string `json:"sub"`
	Transport string `json:"transport"`
	Channels  int    `json:"channels"`
	// Lag is the age of the oldest message not yet written to the
	// connection (queued, or waiting for room in the queue); zero when it
	// is caught up. At Config.MaxLag the connection ends as slow-consumer.
	Lag time.Duration `json:"lag_ns"`
	// Queued is the bytes waiting in its queue, of QueueLimit per lane.
	Queued     int `json:"queued_bytes"`
	QueueLimit int `json:"queue_limit_bytes"`
}

// Consumers lists the subscribed connections of this node, the furthest
// behind first (then the most queued, then by id), at most top of them.
func (c *Core) Consumers(top int) []Consumer {
	c.presence.mu.Lock()
	ss := map[*Session]int{}
	for _, m := range c.presence.chans {
		for s := range m {
			ss[s]++
		}
	}
	c.presence.mu.Unlock()
	now := c.now()
	out := make([]Consumer, 0, len(ss))
	for s, n := range ss {
		info := s.h.Info()
		cs := Consumer{Conn: info.ID, Sub: info.Sub, Transport: string(info.Transport), Channels: n, QueueLimit: c.cfg.QueueBytes}
		if s.q != nil {
			var oldest time.Time
			cs.Queued, oldest = s.q.stats()
			if !oldest.IsZero() {
				cs.Lag = max(now.Sub(oldest), 0)
			}
		}
		out = append(out, cs)
	}
	slices.SortFunc(out, func(a, b Consumer) int {
		return cmp.Or(cmp.Compare(b.Lag, a.Lag), cmp.Compare(b.Queued, a.Queued), cmp.Compare(a.Conn, b.Conn))
	})
	if top >= 0 && len(out) > top {
		out = out[:top]
	}
	return out
}

// stats returns the bytes queued in both lanes and the oldest lag clock
// (oldest).
func (q *queue) stats() (queued int, oldest time.Time) {
	q.mu.Lock()
	queued = q.ctrl.bytes + q.msgs.bytes
	q.mu.Unlock()
	return queued, q.oldest()
}

// PresenceFirst is Presence bounded: the n oldest subscriptions of
// channel on this node, oldest first, and how many there are in all. It
// describes only the n it returns, so a channel with many subscribers
// costs one pass under the presence lock and n descriptions.
func (c *Core) PresenceFirst(channel string, n int) (first []Present, total int) {
	type one struct {
		s     *Session
		since time.Time
	}
	c.presence.mu.Lock()
	m := c.presence.chans[channel]
	total = len(m)
	ss := make([]one, 0, len(m))
	for s, e := range m {
		ss = append(ss, one{s, e.since})
	}
	c.presence.mu.Unlock()
	slices.SortFunc(ss, func(a, b one) int { return a.since.Compare(b.since) })
	first = make([]Present, 0, min(n, len(ss)))
	for _, o := range ss[:min(max(n, 0), len(ss))] {
		info := o.s.h.Info()
		first = append(first, Present{Sub: info.Sub, Conn: info.ID, Transport: string(info.Transport), Since: o.since.UTC()})
	}
	return first, total
}
