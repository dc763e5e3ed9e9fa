package natsstore

import (
	"context"
	"fmt"
	"time"

	"github.com/tether-run/tether/store"
)

// Read implements store.Store. It answers from the channel's tail when it
// can (tail.go); otherwise it asks the leader for the channel's Latest,
// then reads the page from any replica (falling back to the leader if that
// replica lags). The chain of Tether-Prev headers checks the cursor: the
// first message returned names its predecessor, which is the cursor when
// nothing was missed; lies after it when retention removed messages (a
// gap); and lies before it when the cursor is no message of this channel
// (a cursor of another channel of the stream, which ErrBadCursor rejects).
func (s *Store) Read(ctx context.Context, channel string, after store.Cursor, limit int) (store.ReadResult, error) {
	if !store.ValidChannel(channel) {
		return store.ReadResult{}, store.ErrBadChannel
	}
	cur, ok := parseCursor(after)
	if !ok {
		return store.ReadResult{}, store.ErrBadCursor
	}
	if limit < 1 {
		return store.ReadResult{}, fmt.Errorf("tether: natsstore: read limit %d, want at least 1", limit)
	}
	if ctx.Err() != nil {
		return store.ReadResult{}, context.Cause(ctx)
	}
	done, err := s.use()
	if err != nil {
		return store.ReadResult{}, err
	}
	defer done()
	if res, ok := s.readTail(channel, cur, limit); ok {
		return res, nil
	}
	release, err := s.readSlot(ctx)
	if err != nil {
		return store.ReadResult{}, err
	}
	defer release()

	subject := channelSubject(s.prefix, channel)
	last, ok := s.syncedLast(channel, cur)
	if !ok {
		if last, err = s.latest(ctx, subject); err != nil {
			return store.ReadResult{}, s.mapErr(ctx, err)
		}
		s.observe(channel, last, false)
	}
	if cur > last {
		return store.ReadResult{}, store.ErrCursorAhead
	}
	msgs, err := s.scan(ctx, subject, cur+1, last, limit)
	if err != nil {
		return store.ReadResult{}, s.mapErr(ctx, err)
	}
	res := store.ReadResult{Next: formatCursor(last)}
	if len(msgs) == 0 {
		// Everything after the cursor expired; Start never misses anything.
		res.Gap = cur != 0 && cur < last
		return res, nil
	}
	res.Messages = make([]store.Message, len(msgs))
	for i, m := range msgs {
		res.Messages[i] = m.message()
	}
	res.Next = res.Messages[len(msgs)-1].ID
	switch {
	case cur == 0 || msgs[0].prev == cur:
	case msgs[0].prev < cur:
		return store.ReadResult{}, store.ErrBadCursor // between two of the channel's messages
	default:
		res.Gap = true
		res.Earliest = res.Messages[0].ID
	}
	return res, nil
}

// syncedLast returns the channel's newest message as this store knows it,
// when the leader has confirmed that knowledge to a Wait (synced: the watch
// has reported every later message since) and cur is not after it. A read
// may then use it as Latest and save the round trip to the leader: what the
// watch has not yet delivered is a moment away, as for a read from the
// tail. A cursor after it may come from another node's newer append, and
// only the leader can tell whether it is ahead.
func (s *Store) syncedLast(channel string, cur uint64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chans[channel]
	if c == nil || !c.synced || cur > c.last {
		return 0, false
	}
	return c.last, true
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

	subject := channelSubject(s.prefix, channel)
	last, err := s.latest(ctx, subject)
	if err != nil {
		return store.Bounds{}, s.mapErr(ctx, err)
	}
	s.observe(channel, last, false)
	b := store.Bounds{Latest: formatCursor(last)}
	first, err := s.scan(ctx, subject, 1, last, 1)
	if err != nil {
		return store.Bounds{}, s.mapErr(ctx, err)
	}
	if len(first) > 0 {
		b.Earliest = formatCursor(first[0].seq)
	}
	return b, nil
}

// Wait implements store.Store. It registers on the channel before it asks
// the leader for Latest, so a message stored after that answer is either
// in the answer or wakes it through the watch: no wakeup is lost.
func (s *Store) Wait(ctx context.Context, channel string, after store.Cursor) error {
	if !store.ValidChannel(channel) {
		return store.ErrBadChannel
	}
	cur, ok := parseCursor(after)
	if !ok {
		return store.ErrBadCursor
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	select {
	case <-s.closing:
		return store.ErrClosed
	default:
	}
	c, notify, known, synced := s.register(channel)
	defer s.deregister(c)
	if known > cur {
		if s.tailHas(c, cur) {
			return nil
		}
		return s.checkCursor(ctx, channel, cur, known)
	}
	// A subscriber that has caught up waits after the newest message this
	// store knows of; once the leader confirmed that knowledge (synced),
	// the watch reports anything later, so the wait needs no round trip.
	// (cur is then that channel's own message, hence a valid cursor.)
	if !synced || cur != known {
		last, err := s.checkLatest(ctx, channel)
		switch {
		case err != nil:
			return err
		case cur > last:
			return store.ErrCursorAhead
		case cur < last:
			return s.checkCursor(ctx, channel, cur, last)
		}
		s.mu.Lock()
		c.synced = true // registered before asking: the watch covers the rest
		s.mu.Unlock()
	}
	for {
		select {
		case <-notify:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.closing:
			return store.ErrClosed
		}
		s.mu.Lock()
		if c.last > cur {
			s.mu.Unlock()
			return nil
		}
		if c.notify == nil {
			c.notify = make(chan struct{})
		}
		notify = c.notify
		s.mu.Unlock()
	}
}

// checkLatest asks the leader for the channel's Latest, as a call that
// Close waits for.
func (s *Store) checkLatest(ctx context.Context, channel string) (uint64, error) {
	done, err := s.use()
	if err != nil {
		return 0, err
	}
	defer done()
	release, err := s.readSlot(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	last, err := s.latest(ctx, channelSubject(s.prefix, channel))
	if err != nil {
		return 0, s.mapErr(ctx, err)
	}
	s.observe(channel, last, false)
	return last, nil
}

// checkCursor rejects a cursor below the channel's Latest that is not a
// message of the channel, as Read would: the channel's next message after
// it must name it, or something after it, as its predecessor.
func (s *Store) checkCursor(ctx context.Context, channel string, cur, last uint64) error {
	if cur == 0 {
		return nil
	}
	done, err := s.use()
	if err != nil {
		return err
	}
	defer done()
	release, err := s.readSlot(ctx)
	if err != nil {
		return err
	}
	defer release()
	subject := channelSubject(s.prefix, channel)
	page, err := s.directBatch(ctx, subject, cur+1, 1)
	if err == nil && (len(page) == 0 || page[0].seq > last) {
		var m stored // the replica lags: ask the leader
		m, err = s.leaderGet(ctx, getRequest{Seq: cur + 1, NextFor: subject})
		page = []stored{m}
	}
	if err != nil {
		return s.mapErr(ctx, err)
	}
	if page[0].prev < cur {
		return store.ErrBadCursor
	}
	return nil
}

// register counts a waiter on the channel and returns what to wait on and
// the highest sequence known so far.
func (s *Store) register(name string) (*channel, chan struct{}, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.entryLocked(name, true)
	if c.notify == nil {
		c.notify = make(chan struct{})
	}
	c.waiters++
	c.used = time.Now()
	return c, c.notify, c.last, c.synced
}

// deregister undoes register.
func (s *Store) deregister(c *channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.waiters--
}
