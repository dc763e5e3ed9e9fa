package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tether-run/tether/store"
)

// appendReq is one Append on its way to the committer.
type appendReq struct {
	ctx     context.Context // only checked, never stored beyond the request
	channel string
	// value is the message's value with its accept time left zero for the
	// committer to fill in. Encoding it here copies the caller's data, which
	// the caller may reuse as soon as Append returns.
	value []byte
	key   string
	// expect is AppendOptions.ExpectLatest, parsed; hasExpect says it was
	// set.
	expect    uint64
	hasExpect bool
	reply     chan appendReply // buffered: the committer never blocks on it
}

type appendReply struct {
	res store.AppendResult
	err error
}

// Append implements store.Store. It hands the append to the committer and
// waits for the group commit that makes it durable. If ctx ends while the
// append waits, Append returns context.Cause(ctx) and the append may or may
// not happen; an idempotency key makes retrying it safe.
func (s *Store) Append(ctx context.Context, channel string, data []byte, opts store.AppendOptions) (store.AppendResult, error) {
	if !store.ValidChannel(channel) {
		return store.AppendResult{}, store.ErrBadChannel
	}
	if ctx.Err() != nil {
		return store.AppendResult{}, context.Cause(ctx)
	}
	req := &appendReq{
		ctx:     ctx,
		channel: channel,
		value:   encodeMessage(0, data),
		key:     opts.IdempotencyKey,
		reply:   make(chan appendReply, 1),
	}
	if opts.ExpectLatest != "" {
		seq, ok := parseCursor(opts.ExpectLatest)
		if !ok {
			return store.AppendResult{}, store.ErrBadCursor
		}
		req.expect, req.hasExpect = seq, true
	}
	if req.key == "" && s.refusing() {
		// Fast: only an append with a key, which may be a duplicate,
		// needs the committer to answer it.
		return store.AppendResult{}, store.ErrNoSpace
	}
	if err := s.enqueue(ctx, req); err != nil {
		return store.AppendResult{}, err
	}
	select {
	case r := <-req.reply:
		return r.res, r.err
	case <-ctx.Done():
		return store.AppendResult{}, context.Cause(ctx)
	}
}

// enqueue puts req on the queue unless the store is closed or ctx ends
// first. The senders count lets Close know when the queue can be closed.
func (s *Store) enqueue(ctx context.Context, req *appendReq) error {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return store.ErrClosed
	}
	s.senders.Add(1)
	s.life.RUnlock()
	defer s.senders.Done()
	select {
	case s.queue <- req:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// runCommitter is the committer goroutine: the only writer of the
// database. It commits queued appends in groups and runs the periodic trim.
// Open starts it; it exits when Close closes the queue and it has drained
// it.
func (s *Store) runCommitter() {
	defer close(s.committerDone)
	tick := time.NewTicker(s.cfg.TrimInterval)
	defer tick.Stop()
	var spaceTick <-chan time.Time
	if s.space != nil {
		t := time.NewTicker(spaceCheckInterval)
		defer t.Stop()
		spaceTick = t.C
	}
	for {
		select {
		case req, ok := <-s.queue:
			if !ok {
				return
			}
			s.commitAppends(s.collect(req))
		case <-tick.C:
			s.evictIdle()
			s.trim()
		case <-spaceTick:
			s.checkSpace()
		}
	}
}

// collect gathers first and whatever else is queued, up to the batch
// bounds, without waiting.
func (s *Store) collect(first *appendReq) []*appendReq {
	batch := []*appendReq{first}
	size := len(first.value)
	for len(batch) < maxBatch && size < maxBatchBytes {
		select {
		case req, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = append(batch, req)
			size += len(req.value)
		default:
			return batch
		}
	}
	return batch
}

// batchState is what one group commit changes, before it is published.
type batchState struct {
	b     *pebble.Batch
	nanos int64                   // accept time of every append in the batch
	chans map[string]*channelEdit // channels the batch touches
	keys  map[string]idemEntry    // idempotency keys set by the batch, by idem key
	// appended counts the messages staged, duplicates excluded.
	appended int
}

// channelEdit is a channel's state as the batch leaves it.
type channelEdit struct {
	first, last uint64
	firstNanos  int64
}

// commitAppends stages every request of a group into one Pebble batch,
// commits it with one fsync, publishes the new state and replies. While
// the disk is nearly full it refuses them instead.
func (s *Store) commitAppends(reqs []*appendReq) {
	if s.refusing() || s.readOnly || s.db == nil {
		s.refuse(reqs)
		return
	}
	bs := &batchState{
		b:     s.db.NewBatch(),
		nanos: s.acceptNanos(),
		chans: map[string]*channelEdit{},
		keys:  map[string]idemEntry{},
	}
	defer bs.b.Close()
	replies := make([]appendReply, len(reqs))
	var err error
	for i, req := range reqs {
		if req.ctx.Err() != nil {
			// Its Append has returned or is about to: do not append behind
			// its back.
			replies[i].err = context.Cause(req.ctx)
			continue
		}
		if req.hasExpect && !s.isLatest(bs, req) {
			replies[i].err = store.ErrConflict
			continue
		}
		if replies[i].res, err = s.stage(bs, req); err != nil {
			break
		}
	}
	if err == nil {
		err = s.finishBatch(bs)
	}
	broken := false
	if err == nil && !bs.b.Empty() {
		err, broken = s.commitSafely(bs.b, pebble.Sync)
	}
	if err != nil {
		s.cfg.Logger.Error("pebblestore: commit failed", "err", err, "appends", len(reqs))
		if errors.Is(err, syscall.ENOSPC) {
			err = store.ErrNoSpace
		} else {
			err = fmt.Errorf("tether: pebblestore: append: %w", err)
		}
		for i := range replies {
			if replies[i].err == nil {
				replies[i] = appendReply{err: err}
			}
		}
	} else {
		s.publish(bs.chans)
		if bs.appended > 0 {
			s.stats.syncs.Add(1)
			s.stats.appends.Add(int64(bs.appended))
		}
	}
	for i, req := range reqs {
		req.reply <- replies[i]
	}
	switch {
	case broken:
		s.afterBrokenCommit(err)
	case s.space != nil:
		s.space.wrote(bs.b.Len())
	}
}

// acceptNanos returns the accept time for a batch: the clock, held back so
// that it never goes below a time already handed out.
func (s *Store) acceptNanos() int64 {
	s.lastNanos = max(s.lastNanos, s.cfg.Now().UnixNano())
	return s.lastNanos
}

// stage adds one append to the batch, or answers it as a duplicate. An
// error leaves the batch half-staged: the caller must fail all of it.
func (s *Store) stage(bs *batchState, req *appendReq) (store.AppendResult, error) {
	var ik []byte
	if req.key != "" {
		ik = idemKey(req.channel, req.key)
		e, ok, err := s.lookupIdem(bs, ik)
		if err != nil {
			return store.AppendResult{}, err
		}
		if ok {
			return store.AppendResult{ID: formatCursor(e.seq), Time: time.Unix(0, e.nanos), Duplicate: true}, nil
		}
	}
	c, err := s.edit(bs, req.channel)
	if err != nil {
		return store.AppendResult{}, err
	}
	c.last++
	if c.first == c.last { // the channel held nothing before
		c.firstNanos = bs.nanos
	}
	setMessageNanos(req.value, bs.nanos)
	if err := bs.b.Set(msgKey(req.channel, c.last), req.value, nil); err != nil {
		return store.AppendResult{}, err
	}
	if ik != nil {
		e := idemEntry{seq: c.last, nanos: bs.nanos}
		bs.keys[string(ik)] = e
		if err := s.setIdem(bs, ik, req.channel, req.key, e); err != nil {
			return store.AppendResult{}, err
		}
	}
	bs.appended++
	return store.AppendResult{ID: formatCursor(c.last), Time: time.Unix(0, bs.nanos)}, nil
}

// isLatest reports whether a conditional append may go ahead: its
// idempotency key is a duplicate (stage answers it as one), or the
// channel's last seq, as the batch leaves it so far, is the expected one.
// It only looks, so a refused append leaves no trace in the batch.
func (s *Store) isLatest(bs *batchState, req *appendReq) bool {
	if req.key != "" {
		if _, dup, err := s.lookupIdem(bs, idemKey(req.channel, req.key)); err != nil || dup {
			return true // stage sees the same and answers (or fails) the batch
		}
	}
	if c, ok := bs.chans[req.channel]; ok {
		return c.last == req.expect
	}
	c, err := s.current(req.channel)
	if err != nil {
		return true // stage meets the same error and fails the batch
	}
	return c.last == req.expect
}

// lookupIdem finds an idempotency key set within the dedup window, in this
// batch or on disk.
func (s *Store) lookupIdem(bs *batchState, ik []byte) (idemEntry, bool, error) {
	if e, ok := bs.keys[string(ik)]; ok {
		return e, true, nil
	}
	v, closer, err := s.db.Get(ik)
	if errors.Is(err, pebble.ErrNotFound) {
		return idemEntry{}, false, nil
	}
	if err != nil {
		return idemEntry{}, false, err
	}
	defer closer.Close()
	e, err := decodeIdem(v)
	if err != nil {
		return idemEntry{}, false, err
	}
	return e, bs.nanos < e.nanos+int64(s.cfg.DedupWindow), nil
}

func (s *Store) setIdem(bs *batchState, ik []byte, channel, key string, e idemEntry) error {
	if err := bs.b.Set(ik, e.encode(), nil); err != nil {
		return err
	}
	return bs.b.Set(expiryKey(e.nanos, channel, key), nil, nil)
}

// edit returns the batch's working copy of a channel's state.
func (s *Store) edit(bs *batchState, name string) (*channelEdit, error) {
	if c, ok := bs.chans[name]; ok {
		return c, nil
	}
	c, err := s.current(name)
	if err != nil {
		return nil, err
	}
	if c.last == 0 {
		c = channelEdit{first: 1}
	}
	bs.chans[name] = &c
	return &c, nil
}

// finishBatch applies MaxMessages to the channels the batch touched and
// writes their meta.
func (s *Store) finishBatch(bs *batchState) error {
	for name, c := range bs.chans {
		if limit := uint64(s.cfg.Retention.MaxMessages); limit > 0 && c.first <= c.last && c.last-c.first+1 > limit {
			if err := deleteMessages(bs.b, name, c.first, c.last-limit+1); err != nil {
				return err
			}
			c.first = c.last - limit + 1
			c.firstNanos = 0 // unknown until the trimmer looks
		}
		m := meta{first: c.first, last: c.last, lastNanos: s.lastNanos}
		if err := bs.b.Set(metaKey(name), m.encode(), nil); err != nil {
			return err
		}
	}
	return nil
}

// deleteMessages deletes a channel's messages with seqs in [from, to).
// Short runs get point deletes, which compact away cheaply; long ones one
// range deletion.
func deleteMessages(b *pebble.Batch, channel string, from, to uint64) error {
	if to-from > 16 {
		return b.DeleteRange(msgKey(channel, from), msgKey(channel, to), nil)
	}
	for seq := from; seq < to; seq++ {
		if err := b.Delete(msgKey(channel, seq), nil); err != nil {
			return err
		}
	}
	return nil
}
