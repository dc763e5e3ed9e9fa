package pebblestore

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tether-run/tether/store"
)

// Read implements store.Store. It reads from a consistent snapshot bounded
// by the published last seq, and hides messages older than MaxAge that the
// trimmer has not deleted yet.
func (s *Store) Read(ctx context.Context, channel string, after store.Cursor, limit int) (store.ReadResult, error) {
	if !store.ValidChannel(channel) {
		return store.ReadResult{}, store.ErrBadChannel
	}
	cur, ok := parseCursor(after)
	if !ok {
		return store.ReadResult{}, store.ErrBadCursor
	}
	if limit < 1 {
		return store.ReadResult{}, fmt.Errorf("tether: pebblestore: read limit %d, want at least 1", limit)
	}
	if ctx.Err() != nil {
		return store.ReadResult{}, context.Cause(ctx)
	}
	done, err := s.use()
	if err != nil {
		return store.ReadResult{}, err
	}
	defer done()

	first, last, err := s.visible(channel)
	if err != nil {
		return store.ReadResult{}, err
	}
	if cur > last {
		return store.ReadResult{}, store.ErrCursorAhead
	}
	msgs, err := s.scan(channel, max(cur+1, first), last, limit)
	if err != nil {
		return store.ReadResult{}, err
	}
	res := store.ReadResult{Messages: msgs, Next: formatCursor(last)}
	firstSeen := last + 1
	if len(msgs) > 0 {
		res.Next = msgs[len(msgs)-1].ID
		firstSeen, _ = parseCursor(msgs[0].ID)
	}
	// Seqs are contiguous, so a first message past cur+1 means retention
	// removed the ones between. Start never misses anything.
	if cur != 0 && firstSeen > cur+1 {
		res.Gap = true
		if len(msgs) > 0 {
			res.Earliest = msgs[0].ID
		}
	}
	return res, nil
}

// Bounds implements store.Store.
func (s *Store) Bounds(ctx context.Context, channel string) (store.Bounds, error) {
	if !store.ValidChannel(channel) {
		return store.Bounds{}, store.ErrBadChannel
	}
	if ctx.Err() != nil {
		return store.Bounds{}, context.Cause(ctx)
	}
	done, err := s.use()
	if err != nil {
		return store.Bounds{}, err
	}
	defer done()

	first, last, err := s.visible(channel)
	if err != nil {
		return store.Bounds{}, err
	}
	b := store.Bounds{Latest: formatCursor(last)}
	if s.cfg.Retention.MaxAge == 0 {
		if first <= last {
			b.Earliest = formatCursor(first)
		}
		return b, nil
	}
	// The oldest message on disk may have expired since the last trim.
	msgs, err := s.scan(channel, first, last, 1)
	if err != nil {
		return store.Bounds{}, err
	}
	if len(msgs) > 0 {
		b.Earliest = msgs[0].ID
	}
	return b, nil
}

// scan returns up to limit unexpired messages of a channel with seqs in
// [from, last], oldest first. The caller holds life.
func (s *Store) scan(channel string, from, last uint64, limit int) ([]store.Message, error) {
	if from > last {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: msgKey(channel, from),
		UpperBound: msgUpperBound(channel, last),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	cutoff := int64(-1 << 63)
	if maxAge := s.cfg.Retention.MaxAge; maxAge > 0 {
		cutoff = s.cfg.Now().UnixNano() - int64(maxAge)
	}
	msgs := make([]store.Message, 0, min(limit, 64))
	for it.First(); it.Valid() && len(msgs) < limit; it.Next() {
		nanos, data, err := decodeMessage(it.Value())
		if err != nil {
			return nil, fmt.Errorf("%w: message %x", err, it.Key())
		}
		if nanos <= cutoff {
			continue // expired; accept times never decrease, so only a prefix is
		}
		msgs = append(msgs, store.Message{
			ID:   formatCursor(seqOfMsgKey(it.Key())),
			Data: append([]byte{}, data...),
			Time: time.Unix(0, nanos),
		})
	}
	return msgs, it.Error()
}

// Wait implements store.Store. A Wait that blocks registers on its
// channel's notify and deregisters on every way out, so a cancelled Wait
// leaves nothing behind.
func (s *Store) Wait(ctx context.Context, channel string, after store.Cursor) error {
	if !store.ValidChannel(channel) {
		return store.ErrBadChannel
	}
	cur, ok := parseCursor(after)
	if !ok {
		return store.ErrBadCursor
	}
	for {
		select {
		case <-s.closing:
			return store.ErrClosed
		default:
		}
		c, notify, err := s.register(channel, cur)
		if err != nil || notify == nil {
			return err
		}
		select {
		case <-notify:
			s.deregister(channel, c)
		case <-ctx.Done():
			s.deregister(channel, c)
			return context.Cause(ctx)
		case <-s.closing:
			s.deregister(channel, c)
			return store.ErrClosed
		}
	}
}

// register returns a nil notify when a message after cur exists, or else
// registers a waiter on the channel and returns what to wait on. A channel
// with a waiter stays in memory.
func (s *Store) register(name string, cur uint64) (*channel, chan struct{}, error) {
	done, err := s.use()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	if _, last, err := s.visible(name); err != nil {
		return nil, nil, err
	} else if cur < last {
		return nil, nil, nil
	} else if cur > last {
		return nil, nil, store.ErrCursorAhead
	}
	c, err := s.lockedEntry(name, true)
	if err != nil {
		return nil, nil, err
	}
	defer s.mu.Unlock()
	switch {
	case cur < c.last: // appended since the check above
		return nil, nil, nil
	case cur > c.last:
		return nil, nil, store.ErrCursorAhead
	}
	if c.notify == nil {
		c.notify = make(chan struct{})
	}
	c.waiters++
	return c, c.notify, nil
}

// deregister undoes register. The last waiter of a channel that holds
// nothing removes the entry register created for it.
func (s *Store) deregister(name string, c *channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.waiters--
	if c.waiters > 0 {
		return
	}
	c.notify = nil
	if c.last == 0 && s.chans[name] == c {
		s.dropLocked(name)
	}
}
