package session

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// sharedReads lets the subscriptions of a channel that read after the same
// cursor share one store read and one encoding of its message frames. An
// append to a channel with S subscribers wakes all S at once, at the same
// cursor: without sharing, each reads the store and encodes every frame
// itself, which the load harness measured as the largest cost of a fan-out.
//
// Sharing never hands out a wrong page: every page is a true snapshot of
// the messages after its cursor at the time it was read. A page may be
// older than a subscriber's wake-up, so an empty page is never reused (the
// subscriber would Wait, return at once and read the same empty page
// again); a non-empty one always moves its reader forward.
//
// Finished pages are forgotten sharedPageTTL after their read: by the next
// read of their channel, or by a sweep that a runtime timer runs while any
// page is kept, so that an idle server holds no messages (a fan-out of
// large messages to many channels would otherwise keep them until each
// channel is read again).
type sharedReads struct {
	mu      sync.Mutex
	chans   map[string][]*page // guarded by mu
	sweeper *time.Timer        // guarded by mu; nil until the first page
	armed   bool               // guarded by mu: the sweeper will fire
}

// page is one read of a channel after a cursor, and its message frames
// in each Format that asked for them.
type page struct {
	channel string
	after   store.Cursor
	limit   int
	done    chan struct{} // closed once res and err are set

	started time.Time // when the read began; set before the page is shared

	res store.ReadResult
	err error
	at  time.Time // when the read finished

	// encs holds one encoding per Format, copied on write: readers load it
	// without a lock (every subscriber of a fan-out reads it); mu
	// serialises the writers.
	encs atomic.Pointer[[]encoding]
	mu   sync.Mutex
}

// encoding is a page's message frames in one Format, or its whole answer
// in one PageFormat: encoded once, never modified.
type encoding struct {
	f      any // a Format or a PageFormat
	frames [][]byte
}

// frames returns the message frames of the page's messages in f,
// encoding them on first use. Subscribers of one format wait for one
// encoding rather than each doing its own.
func (p *page) frames(f Format) [][]byte {
	return p.encoded(f, func() [][]byte { return encodeMessages(f, p.channel, p.res.Messages) })
}

// page returns the page encoded whole in f, encoding it on first use.
func (p *page) page(f PageFormat) []byte {
	return p.encoded(f, func() [][]byte {
		b := f.EncodePage(p.after, p.res)
		return [][]byte{b[:len(b):len(b)]}
	})[0]
}

// encoded returns the page's encoding for key, made by enc on first use.
func (p *page) encoded(key any, enc func() [][]byte) [][]byte {
	if e := p.lookup(key); e != nil {
		return e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.lookup(key); e != nil {
		return e
	}
	frames := enc()
	var encs []encoding
	if old := p.encs.Load(); old != nil {
		encs = append(encs, *old...)
	}
	encs = append(encs, encoding{f: key, frames: frames})
	p.encs.Store(&encs)
	return frames
}

func (p *page) lookup(key any) [][]byte {
	if encs := p.encs.Load(); encs != nil {
		for _, e := range *encs {
			if e.f == key {
				return e.frames
			}
		}
	}
	return nil
}

const (
	// sharedPageTTL is how long a finished page may be reused.
	sharedPageTTL = time.Second
	// maxSharedPages bounds the pages kept per channel.
	maxSharedPages = 16
	// sweepAfter is how long after a page is kept the sweeper runs: a
	// page is stale by then.
	sweepAfter = 2 * sharedPageTTL
)

// read returns a page of channel after the cursor, sharing a read in
// flight or one just finished. A page whose read started before since is
// not shared: a long-poll's first read passes its own start, so that it
// answers what the channel holds now, not a page up to sharedPageTTL old
// (the zero since shares any).
func (r *sharedReads) read(ctx context.Context, st store.Store, channel string, after store.Cursor, limit int, since time.Time) (*page, error) {
	return r.readShared(ctx, st, channel, after, limit, since, false)
}

// readBeforeWait is read for a caller that waits on the store when the
// page is empty (a long-poll's first read): it also takes a finished
// empty page, however recent its start. A stale empty page costs such a
// caller nothing: its store.Wait after the cursor returns at once if a
// message came since, and the read after the wait shares no empty page.
// Caught-up long-polls of a channel then share their first read instead
// of each reading the store for nothing.
func (r *sharedReads) readBeforeWait(ctx context.Context, st store.Store, channel string, after store.Cursor, limit int, since time.Time) (*page, error) {
	return r.readShared(ctx, st, channel, after, limit, since, true)
}

func (r *sharedReads) readShared(ctx context.Context, st store.Store, channel string, after store.Cursor, limit int, since time.Time, emptyOK bool) (*page, error) {
	now := time.Now()
	r.mu.Lock()
	if r.chans == nil {
		r.chans = map[string][]*page{}
	}
	for _, p := range r.chans[channel] {
		if p.after != after || p.limit != limit {
			continue
		}
		select {
		case <-p.done:
			empty := len(p.res.Messages) == 0 && !p.res.Gap
			fresh := !p.started.Before(since) && len(p.res.Messages) > 0
			if p.err == nil && (fresh || emptyOK && empty) && now.Sub(p.at) < sharedPageTTL {
				r.mu.Unlock()
				return p, nil
			}
			continue
		default:
		}
		if p.started.Before(since) {
			continue
		}
		r.mu.Unlock()
		select { // a read in flight: join it
		case <-p.done:
			if p.err == nil {
				return p, nil
			}
			// Its reader's failure is not necessarily ours: read alone.
			return r.readAlone(ctx, st, channel, after, limit)
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	p := &page{channel: channel, after: after, limit: limit, done: make(chan struct{}), started: now}
	r.chans[channel] = append(r.prune(r.chans[channel], now), p)
	r.armLocked()
	r.mu.Unlock()

	// The read serves every joiner, so one subscriber's end must not fail
	// it; the store bounds its own calls.
	p.res, p.err = st.Read(context.WithoutCancel(ctx), channel, after, limit)
	p.at = time.Now()
	close(p.done)
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

// readAlone reads without sharing.
func (r *sharedReads) readAlone(ctx context.Context, st store.Store, channel string, after store.Cursor, limit int) (*page, error) {
	res, err := st.Read(ctx, channel, after, limit)
	if err != nil {
		return nil, err
	}
	return &page{channel: channel, after: after, limit: limit, res: res}, nil
}

// prune drops a channel's pages that are finished and stale, and the
// oldest beyond the bound. r.mu is held.
func (r *sharedReads) prune(pages []*page, now time.Time) []*page {
	kept := pages[:0]
	for _, p := range pages {
		select {
		case <-p.done:
			if now.Sub(p.at) >= sharedPageTTL {
				continue
			}
		default:
		}
		kept = append(kept, p)
	}
	clear(pages[len(kept):])
	if n := len(kept) - (maxSharedPages - 1); n > 0 {
		kept = append(kept[:0], kept[n:]...)
	}
	return kept
}

// armLocked makes the sweeper fire sweepAfter from now, unless it will
// fire already. r.mu is held.
func (r *sharedReads) armLocked() {
	switch {
	case r.armed:
	case r.sweeper == nil:
		r.sweeper = time.AfterFunc(sweepAfter, r.sweep)
	default:
		r.sweeper.Reset(sweepAfter)
	}
	r.armed = true
}

// sweep runs on the sweeper's firing: it forgets the pages that are stale
// and the channels left with none, and comes back while pages are kept.
// Once none is, the map is let go (Go maps never shrink).
func (r *sharedReads) sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = false
	now := time.Now()
	for ch, pages := range r.chans {
		if pages = r.prune(pages, now); len(pages) == 0 {
			delete(r.chans, ch)
		} else {
			r.chans[ch] = pages
		}
	}
	if len(r.chans) == 0 {
		r.chans = nil
		return
	}
	r.armLocked()
}

// encodeMessages encodes the message frames of msgs in f. Each frame's
// capacity is clipped to its length, so that nothing appending to a shared
// frame can write into another's bytes.
func encodeMessages(f Format, channel string, msgs []store.Message) [][]byte {
	frames := make([][]byte, len(msgs))
	for i, m := range msgs {
		f := f.Encode(wire.Message{Type: wire.TypeMessage, Channel: channel, Cursor: string(m.ID), Data: m.Data, Time: m.Time})
		frames[i] = f[:len(f):len(f)]
	}
	return frames
}
