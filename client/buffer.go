package client

import "time"

// Defaults of the unhandled-event buffer (Config.BufferMaxMessages,
// BufferMaxBytes, BufferTTL).
const (
	DefaultBufferMaxMessages = 1000
	DefaultBufferMaxBytes    = 4 << 20
	DefaultBufferTTL         = 30 * time.Second
)

// heldEvent is an event of a channel without a handler, waiting for one.
type heldEvent struct {
	ev   Event
	at   time.Time // when it was held
	size int       // its data's bytes
}

// unhandled holds events of channels that have no handler yet, in the
// order they came, bounded by count, by bytes of data and by age. At a
// bound the oldest events go first (across channels): what is dropped is
// counted per channel, reported, and announced to the channel's handler
// by an EventDropped ahead of what remains. It is plain data: its owner
// (Client, under its mu) supplies the time.
type unhandled struct {
	maxN, maxBytes int
	ttl            time.Duration

	q       []heldEvent       // oldest first
	bytes   int               // sum of q's sizes
	pending map[string]*drops // channel -> drops not yet announced to a handler
}

// drops counts what was dropped of one channel.
type drops struct {
	overflow, expired int
}

func newUnhandled(maxN, maxBytes int, ttl time.Duration) *unhandled {
	return &unhandled{maxN: maxN, maxBytes: maxBytes, ttl: ttl, pending: map[string]*drops{}}
}

// add holds ev, dropping the oldest events while a bound is passed (ev
// itself, if it alone is larger than maxBytes), and returns what it
// dropped, one Dropped per run of a channel.
func (u *unhandled) add(ev Event, now time.Time) []Dropped {
	h := heldEvent{ev: ev, at: now, size: len(ev.Data)}
	if h.size > u.maxBytes {
		return u.count([]heldEvent{h}, DropOverflow)
	}
	u.q = append(u.q, h)
	u.bytes += h.size
	n := 0
	for len(u.q)-n > u.maxN || u.bytes > u.maxBytes {
		u.bytes -= u.q[n].size
		n++
	}
	return u.dropFront(n, DropOverflow)
}

// expire drops the events held longer than the TTL.
func (u *unhandled) expire(now time.Time) []Dropped {
	n := 0
	for n < len(u.q) && now.Sub(u.q[n].at) >= u.ttl {
		u.bytes -= u.q[n].size
		n++
	}
	return u.dropFront(n, DropExpired)
}

// nextExpiry is when the oldest held event expires.
func (u *unhandled) nextExpiry() (time.Time, bool) {
	if len(u.q) == 0 {
		return time.Time{}, false
	}
	return u.q[0].at.Add(u.ttl), true
}

func (u *unhandled) dropFront(n int, reason string) []Dropped {
	if n == 0 {
		return nil
	}
	gone := u.q[:n:n]
	u.q = append([]heldEvent(nil), u.q[n:]...)
	return u.count(gone, reason)
}

// count books gone events as dropped and groups them into reports.
func (u *unhandled) count(gone []heldEvent, reason string) []Dropped {
	var out []Dropped
	for _, h := range gone {
		ch := h.ev.Channel
		d := u.pending[ch]
		if d == nil {
			d = &drops{}
			u.pending[ch] = d
		}
		if reason == DropOverflow {
			d.overflow++
		} else {
			d.expired++
		}
		if k := len(out) - 1; k >= 0 && out[k].Channel == ch {
			out[k].Messages++
			out[k].Bytes += h.size
			if h.ev.Cursor != "" {
				out[k].LastCursor = h.ev.Cursor
			}
			continue
		}
		out = append(out, Dropped{Channel: ch, Reason: reason, Messages: 1, Bytes: h.size, FirstCursor: h.ev.Cursor, LastCursor: h.ev.Cursor})
	}
	return out
}

// take removes and returns the channel's held events, oldest first,
// preceded by an EventDropped per reason for what was dropped of it.
func (u *unhandled) take(channel string) []Event {
	var out []Event
	if d := u.pending[channel]; d != nil {
		if d.overflow > 0 {
			out = append(out, Event{Kind: EventDropped, Channel: channel, Dropped: d.overflow, DropReason: DropOverflow})
		}
		if d.expired > 0 {
			out = append(out, Event{Kind: EventDropped, Channel: channel, Dropped: d.expired, DropReason: DropExpired})
		}
		delete(u.pending, channel)
	}
	keep := u.q[:0]
	for _, h := range u.q {
		if h.ev.Channel == channel {
			out = append(out, h.ev)
			u.bytes -= h.size
			continue
		}
		keep = append(keep, h)
	}
	clear(u.q[len(keep):])
	u.q = keep
	return out
}

// len is the number of events held.
func (u *unhandled) len() int { return len(u.q) }
