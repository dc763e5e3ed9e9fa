package natsstore

import (
	"sort"
	"time"

	"github.com/tether-run/tether/store"
)

// The tail of a channel.
//
// Each Store keeps, for every channel read or waited on through it in the
// last tailIdle, the channel's newest messages in memory: the watch delivers every message stored in
// the stream (whoever appended it), and the store adds its own appends as
// they are acknowledged. Caught-up subscribers then read from memory, not
// from NATS: the fan-out of one message to many subscribers costs no
// request to the stream.
//
// The tail is a run of the channel's messages with no hole: it starts after
// base, and each message's Tether-Prev is the previous one's sequence. A
// message whose predecessor is not the tail's newest (the watch missed one,
// or lags an acknowledgement) starts a new run after that predecessor.

// Bounds of the tails: messages and bytes per channel, bytes per store.
// A message counts its data and tailOverhead.
const (
	tailMsgs         = 256
	tailChannelBytes = 1 << 20
	tailStoreBytes   = 64 << 20
	tailOverhead     = 64
	tailIdle         = 10 * time.Second
)

// tail is a channel's newest messages; see above.
type tail struct {
	base  uint64   // every message of the channel after base, up to the last of msgs, is in msgs
	msgs  []stored // oldest first; empty when the store keeps no tail for the channel
	bytes int      // the size of msgs, as tailStoreBytes counts it
}

// recordLocked adds m, the channel's newest message as far as this store
// knows, to c's tail. Only channels with waiters, or read or waited on
// within tailIdle, keep a tail; the others drop theirs. The caller holds
// mu.
func (s *Store) recordLocked(c *channel, m stored) {
	t := &c.tail
	if c.waiters == 0 && time.Since(c.used) > tailIdle {
		s.dropTailLocked(c)
		return
	}
	n := len(t.msgs)
	if n > 0 && m.seq <= t.msgs[n-1].seq {
		return // known already: the store's own append, delivered by the watch
	}
	if n == 0 || m.prev != t.msgs[n-1].seq {
		s.dropTailLocked(c)
		t.base = m.prev
	}
	size := len(m.data) + tailOverhead
	if s.tailBytes+size > tailStoreBytes {
		s.dropTailLocked(c)
		return
	}
	t.msgs = append(t.msgs, m)
	t.bytes += size
	s.tailBytes += size
	keep := tailMsgs
	if mm := s.cfg.Retention.MaxMessages; mm > 0 {
		// The stream keeps no more than this: neither may the tail.
		keep = min(keep, mm)
	}
	for len(t.msgs) > keep || t.bytes > tailChannelBytes {
		old := t.msgs[0]
		t.base = old.seq
		t.msgs[0] = stored{}
		t.msgs = t.msgs[1:]
		t.bytes -= len(old.data) + tailOverhead
		s.tailBytes -= len(old.data) + tailOverhead
	}
}

// dropTailLocked empties c's tail. The caller holds mu.
func (s *Store) dropTailLocked(c *channel) {
	s.tailBytes -= c.tail.bytes
	c.tail = tail{}
}

// readTail answers a Read from the channel's tail when it can: the tail
// must reach the newest message this store knows of (it is not behind an
// acknowledgement), hold everything after cur, and hold nothing expired
// among what it returns. ok is false otherwise, and Read asks the stream.
func (s *Store) readTail(channel string, cur uint64, limit int) (res store.ReadResult, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.entryLocked(channel, true)
	c.used = time.Now()
	t := &c.tail
	i, ok := t.after(cur)
	if !ok || t.msgs[len(t.msgs)-1].seq != c.last {
		return res, false
	}
	page := t.msgs[i:min(len(t.msgs), i+limit)]
	res.Next = formatCursor(cur)
	if len(page) == 0 {
		return res, true
	}
	cutoff := s.cutoff()
	res.Messages = make([]store.Message, len(page))
	for j, m := range page {
		if !m.time.After(cutoff) {
			return store.ReadResult{}, false // let the stream's read report the gap
		}
		res.Messages[j] = m.message()
	}
	res.Next = res.Messages[len(page)-1].ID
	return res, true
}

// after returns the index in t.msgs of the first message after cur, when
// the tail holds every message after cur: cur is its base or one of its
// messages.
func (t *tail) after(cur uint64) (int, bool) {
	n := len(t.msgs)
	if n == 0 || cur < t.base || cur > t.msgs[n-1].seq {
		return 0, false
	}
	i := sort.Search(n, func(i int) bool { return t.msgs[i].seq > cur })
	if cur != t.base && (i == 0 || t.msgs[i-1].seq != cur) {
		return 0, false // between two messages of the channel: not its cursor
	}
	return i, true
}

// tailHas reports whether cur is a cursor of the channel that its tail
// vouches for: the tail's base or one of its messages.
func (s *Store) tailHas(c *channel, cur uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := c.tail.after(cur)
	return ok
}
