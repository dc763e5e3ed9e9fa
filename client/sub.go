package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-run/tether/wire"
)

// dedupWindow is how many recent cursors a subscription remembers to drop
// a message it received already. Cursors are opaque (they cannot be
// compared for order), so duplicates are recognised by identity.
const dedupWindow = 1024

// SubscribeOptions are Subscribe's options.
type SubscribeOptions struct {
	// After is the cursor to resume after: the Cursor of the last event
	// the application handled, as it persisted it. "0" reads from the
	// oldest retained message; empty, only messages published from now on.
	After string
	// Handler receives the channel's events. Nil: they wait in the
	// unhandled-event buffer until Handle registers one (or a handler
	// registered earlier with Handle takes them).
	Handler Handler
}

// Subscription is a Client's subscription to one channel. It lives across
// reconnects: on every new connection it resumes after the last cursor
// received.
type Subscription struct {
	c       *Client
	channel string
	ready   chan struct{} // closed once the server first confirmed it, or it failed

	// guarded by c.mu:
	last      *string // where to resume: the last cursor received, or where it started; nil: none yet
	delivered string  // the cursor of the last message a handler returned from
	on        link    // the link it is active on, or being subscribed on
	confirmed bool
	gone      bool
	err       error
	seen      map[string]struct{} // the last dedupWindow cursors received
	ring      []string            // seen, in order
	ringPos   int
}

// Channel is the subscription's channel.
func (s *Subscription) Channel() string { return s.channel }

// Cursor is the cursor of the last message of the channel a handler
// returned from (SubscribeOptions.After before the first): the one to
// persist, and to pass as After when subscribing again, say after a
// restart of the application.
func (s *Subscription) Cursor() string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.delivered
}

// Unsubscribe ends the subscription. Events of the channel already queued
// or held are still delivered; nothing more comes.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	if s.gone {
		c.mu.Unlock()
		return nil
	}
	s.gone = true
	if c.subs[s.channel] == s {
		delete(c.subs, s.channel)
	}
	l := s.on
	c.mu.Unlock()
	if l == nil {
		return nil
	}
	err := l.unsubscribe(ctx, s.channel)
	var ef *wire.ErrorFrame
	if errors.As(err, &ef) && ef.Code == wire.CodeNotSubscribed || errors.Is(err, ErrConnLost) {
		return nil // gone either way
	}
	return err
}

// seenLocked reports whether cursor was received already, and remembers it.
func (s *Subscription) seenLocked(cursor string) bool {
	if _, ok := s.seen[cursor]; ok {
		return true
	}
	if len(s.ring) < dedupWindow {
		s.ring = append(s.ring, cursor)
	} else {
		delete(s.seen, s.ring[s.ringPos])
		s.ring[s.ringPos] = cursor
		s.ringPos = (s.ringPos + 1) % dedupWindow
	}
	s.seen[cursor] = struct{}{}
	return false
}

// Subscribe subscribes to channel and waits until the server confirmed it
// (while the client is offline, until it is connected again), or until
// ctx ends. From then on the subscription resumes by itself after every
// reconnect, after the last cursor received: its events reach the
// channel's handler each once, in order, with an EventGap where the
// server lost messages to retention. A refusal by the server (a
// *wire.ErrorFrame: bad_channel, bad_cursor, cursor_ahead, ...) is
// returned as is.
func (c *Client) Subscribe(ctx context.Context, channel string, opts SubscribeOptions) (*Subscription, error) {
	if !wire.ValidChannel(channel) {
		return nil, &wire.ErrorFrame{Type: wire.TypeError, Code: wire.CodeBadChannel, Message: fmt.Sprintf("channel %q is not valid", channel)}
	}
	s := &Subscription{c: c, channel: channel, ready: make(chan struct{}), seen: map[string]struct{}{}, delivered: opts.After}
	if opts.After != "" {
		a := opts.After
		s.last = &a
	}
	c.mu.Lock()
	if c.isClosing() {
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	if c.subs[channel] != nil {
		c.mu.Unlock()
		return nil, ErrAlreadySubscribed
	}
	c.subs[channel] = s
	if opts.Handler != nil {
		c.handleLocked(channel, opts.Handler)
	}
	l := c.link
	c.mu.Unlock()
	if l != nil {
		c.goActivate(l, s)
	}
	select {
	case <-s.ready:
		c.mu.Lock()
		err := s.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	uctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.Unsubscribe(uctx)
	if c.isClosing() {
		return nil, c.closedErr()
	}
	return nil, context.Cause(ctx)
}

// Handle registers h as the handler of channel's events, replacing the
// one before; nil unregisters it (events then wait in the unhandled-event
// buffer again). Events held for the channel are handed to h at once, in
// order, after an EventDropped for any that were dropped meanwhile.
func (c *Client) Handle(channel string, h Handler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handleLocked(channel, h)
}

func (c *Client) handleLocked(channel string, h Handler) {
	if h == nil {
		delete(c.handlers, channel)
		return
	}
	c.handlers[channel] = h
	for _, ev := range c.buf.take(channel) {
		c.deliverLocked(h, ev)
	}
	c.armExpiryLocked()
}

func (c *Client) goActivate(l link, s *Subscription) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.activate(l, s)
	}()
}

// activate subscribes s on l, after its last cursor, retrying what may
// succeed on l later; a refusal ends the subscription.
func (c *Client) activate(l link, s *Subscription) {
	c.mu.Lock()
	if s.gone || s.on == l {
		c.mu.Unlock()
		return
	}
	s.on = l
	var after *string
	if s.last != nil {
		a := *s.last
		after = &a
	}
	c.mu.Unlock()
	for try := 0; ; try++ {
		ctx, cancel := c.reqCtx()
		cur, err := l.subscribe(ctx, s.channel, after)
		cancel()
		var ef *wire.ErrorFrame
		isEF := errors.As(err, &ef)
		switch {
		case err == nil, isEF && ef.Code == wire.CodeAlreadySubscribed:
			c.mu.Lock()
			if s.last == nil && err == nil {
				s.last = &cur // nothing came yet: resume from where it started
			}
			first := !s.confirmed
			s.confirmed = true
			gone := s.gone
			c.mu.Unlock()
			if gone {
				// Unsubscribed while the subscribe was on its way: the
				// server may have handled the unsubscribe first (it
				// handles requests concurrently), so say it again.
				uctx, cancel := c.reqCtx()
				l.unsubscribe(uctx, s.channel)
				cancel()
			}
			if first {
				close(s.ready)
			}
			return
		case isEF && !ef.Code.Retryable():
			c.endSub(s, err)
			return
		}
		// Retryable, or the request failed: again on l while it lives;
		// the next link resubscribes otherwise.
		if !c.pauseOn(l, c.backoff(try)) {
			c.mu.Lock()
			if s.on == l {
				s.on = nil
			}
			c.mu.Unlock()
			return
		}
	}
}

// endSub ends a subscription the server refused: Subscribe returns err,
// or, once it was confirmed, its handler gets an EventError.
func (c *Client) endSub(s *Subscription, err error) {
	c.mu.Lock()
	if s.gone {
		c.mu.Unlock()
		return
	}
	s.gone = true
	s.err = err
	if c.subs[s.channel] == s {
		delete(c.subs, s.channel)
	}
	confirmed := s.confirmed
	if confirmed {
		c.routeLocked(Event{Kind: EventError, Channel: s.channel, Err: err})
	}
	c.mu.Unlock()
	c.log.Warn("subscription ended", "channel", s.channel, "err", err)
	if !confirmed {
		close(s.ready)
	}
}

// message is a message read from l (sink).
func (c *Client) message(l link, m wire.Message) {
	c.disp.waitRoom()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[m.Channel]
	if c.link != l || s == nil || s.gone {
		return
	}
	if s.seenLocked(m.Cursor) {
		c.stats.Duplicates++
		return
	}
	cur := m.Cursor
	s.last = &cur
	c.routeLocked(Event{Kind: EventMessage, Channel: m.Channel, Cursor: m.Cursor, Data: m.Data, Time: m.Time})
}

// gap is a gap read from l (sink). A gap is reported once: after a
// reconnect that resumes before it, the server reports it again.
func (c *Client) gap(l link, g wire.Gap) {
	c.disp.waitRoom()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[g.Channel]
	if c.link != l || s == nil || s.gone {
		return
	}
	if s.seenLocked("gap\x00" + g.After + "\x00" + g.Earliest) {
		return
	}
	c.routeLocked(Event{Kind: EventGap, Channel: g.Channel, GapAfter: g.After, GapEarliest: g.Earliest})
}

// subFailed: the server ended the subscription of channel on l (sink).
func (c *Client) subFailed(l link, channel string, err error) {
	c.mu.Lock()
	s := c.subs[channel]
	ok := s != nil && c.link == l
	c.mu.Unlock()
	if !ok {
		return
	}
	var ef *wire.ErrorFrame
	if errors.As(err, &ef) && ef.Code.Retryable() {
		// Its store closed (the server is stopping): resume on the next link.
		c.mu.Lock()
		if s.on == l {
			s.on = nil
		}
		c.mu.Unlock()
		return
	}
	c.endSub(s, err)
}

// routeLocked hands ev to its channel's handler, or holds it.
func (c *Client) routeLocked(ev Event) {
	if h := c.handlers[ev.Channel]; h != nil {
		c.deliverLocked(h, ev)
		return
	}
	drops := c.buf.add(ev, time.Now())
	c.reportLocked(drops)
	c.armExpiryLocked()
}

// deliverLocked queues ev for h; once h returned from a message, the
// subscription's Cursor moves to it.
func (c *Client) deliverLocked(h Handler, ev Event) {
	c.disp.push(func() {
		h(ev)
		if ev.Kind != EventMessage {
			return
		}
		c.mu.Lock()
		if s := c.subs[ev.Channel]; s != nil {
			s.delivered = ev.Cursor
		}
		c.mu.Unlock()
	})
}

func (c *Client) reportLocked(drops []Dropped) {
	for _, d := range drops {
		if d.Reason == DropOverflow {
			c.stats.DroppedOverflow += d.Messages
		} else {
			c.stats.DroppedExpired += d.Messages
		}
		c.log.Warn("unhandled events dropped", "channel", d.Channel, "reason", d.Reason, "messages", d.Messages, "bytes", d.Bytes)
		if f := c.cfg.OnDropped; f != nil {
			c.disp.push(func() { f(d) })
		}
	}
}

// armExpiryLocked sets the timer for the next held event's expiry.
func (c *Client) armExpiryLocked() {
	at, ok := c.buf.nextExpiry()
	if !ok {
		if c.expiry != nil {
			c.expiry.Stop()
		}
		return
	}
	d := max(time.Until(at), 0)
	if c.expiry == nil {
		c.expiry = time.AfterFunc(d, c.expireHeld)
		return
	}
	c.expiry.Reset(d)
}

func (c *Client) expireHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosing() {
		return
	}
	c.reportLocked(c.buf.expire(time.Now()))
	c.armExpiryLocked()
}
