package pebblestore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// maxColdTrim bounds how many channel metas one trim walks to age out the
// channels that are not in memory, so that a store with many channels ages
// each of them out once every (channels / maxColdTrim) TrimIntervals.
const maxColdTrim = 1024

// maxIdemTrim bounds how many expired idempotency keys one trim deletes,
// so that a backlog delays appends by one short batch per tick at most.
const maxIdemTrim = 4096

// trim runs on the committer goroutine every TrimInterval: it deletes
// messages older than MaxAge and idempotency keys past the dedup window.
// Neither needs an fsync: a trim lost in a crash is redone by the next one,
// and reads already hide expired messages.
func (s *Store) trim() {
	if s.readOnly || s.db == nil {
		return
	}
	now := s.cfg.Now().UnixNano()
	b := s.db.NewBatch()
	defer b.Close()
	edits, err := s.trimAge(b, now)
	var cold map[string]*channelEdit
	if err == nil {
		cold, err = s.trimCold(b, now)
	}
	if err == nil {
		err = s.trimIdem(b, now)
	}
	broken := false
	if err == nil && !b.Empty() {
		err, broken = s.commitSafely(b, pebble.NoSync)
	}
	if err != nil {
		s.cfg.Logger.Error("pebblestore: trim failed", "err", err)
		if broken {
			s.afterBrokenCommit(err)
		}
		return
	}
	s.publish(edits)
	s.publishCold(cold)
}

// ageCandidate is a channel whose oldest message may have expired.
type ageCandidate struct {
	name        string
	first, last uint64
}

// trimAge deletes the messages older than MaxAge of every channel in
// memory.
func (s *Store) trimAge(b *pebble.Batch, now int64) (map[string]*channelEdit, error) {
	if s.cfg.Retention.MaxAge <= 0 {
		return nil, nil
	}
	cutoff := now - int64(s.cfg.Retention.MaxAge)
	var cands []ageCandidate
	s.mu.RLock()
	for name, c := range s.chans {
		if c.first <= c.last && c.firstNanos <= cutoff { // 0 (unknown) included
			cands = append(cands, ageCandidate{name, c.first, c.last})
		}
	}
	s.mu.RUnlock()

	edits := map[string]*channelEdit{}
	for _, cand := range cands {
		first, firstNanos, err := s.firstKept(cand, cutoff)
		if err != nil {
			return nil, err
		}
		if first > cand.first {
			if err := deleteMessages(b, cand.name, cand.first, first); err != nil {
				return nil, err
			}
			m := meta{first: first, last: cand.last, lastNanos: s.lastNanos}
			if err := b.Set(metaKey(cand.name), m.encode(), nil); err != nil {
				return nil, err
			}
		}
		edits[cand.name] = &channelEdit{first: first, last: cand.last, firstNanos: firstNanos}
	}
	return edits, nil
}

// trimCold deletes the messages older than MaxAge of the channels that are
// not in memory, walking up to maxColdTrim channel metas on disk from where
// the last trim stopped (Store.coldFrom), round and round.
func (s *Store) trimCold(b *pebble.Batch, now int64) (map[string]*channelEdit, error) {
	if s.cfg.Retention.MaxAge <= 0 {
		return nil, nil
	}
	cutoff := now - int64(s.cfg.Retention.MaxAge)
	lower := []byte{kindMeta}
	if s.coldFrom != nil {
		lower = s.coldFrom
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{kindMeta + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	edits := map[string]*channelEdit{}
	n := 0
	for it.First(); it.Valid() && n < maxColdTrim; it.Next() {
		n++
		name := string(it.Key()[1:])
		if s.inMemory(name) {
			continue // trimAge's
		}
		m, err := decodeMeta(it.Value())
		if err != nil {
			return nil, fmt.Errorf("%w: meta of %q", err, name)
		}
		if m.first > m.last {
			continue
		}
		if nanos, err := s.messageNanos(name, m.first); err != nil || nanos > cutoff {
			if err != nil {
				return nil, err
			}
			continue
		}
		first, firstNanos, err := s.firstKept(ageCandidate{name, m.first, m.last}, cutoff)
		if err != nil {
			return nil, err
		}
		if err := deleteMessages(b, name, m.first, first); err != nil {
			return nil, err
		}
		m.first, m.lastNanos = first, s.lastNanos
		if err := b.Set(metaKey(name), m.encode(), nil); err != nil {
			return nil, err
		}
		edits[name] = &channelEdit{first: first, last: m.last, firstNanos: firstNanos}
	}
	s.coldFrom = nil
	if it.Valid() {
		s.coldFrom = append([]byte{}, it.Key()...)
	}
	return edits, it.Error()
}

// inMemory reports whether a channel's state is in memory.
func (s *Store) inMemory(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.chans[name] != nil
}

// firstKept finds the oldest message of a channel accepted after cutoff,
// by binary search: accept times never decrease along a channel. It
// returns last+1 when every message has expired.
func (s *Store) firstKept(c ageCandidate, cutoff int64) (seq uint64, nanos int64, err error) {
	lo, hi := c.first, c.last
	for lo <= hi {
		mid := lo + (hi-lo)/2
		t, err := s.messageNanos(c.name, mid)
		if err != nil {
			return 0, 0, err
		}
		if t > cutoff {
			nanos = t
			hi = mid - 1 // mid >= first >= 1, so this cannot wrap
		} else {
			lo = mid + 1
		}
	}
	if lo > c.last {
		nanos = 0
	}
	return lo, nanos, nil
}

func (s *Store) messageNanos(channel string, seq uint64) (int64, error) {
	v, closer, err := s.db.Get(msgKey(channel, seq))
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	nanos, _, err := decodeMessage(v)
	return nanos, err
}

// trimIdem deletes idempotency keys accepted at or before now minus the
// dedup window, oldest first, by walking the expiry index.
func (s *Store) trimIdem(b *pebble.Batch, now int64) error {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{kindExpiry},
		UpperBound: expiryBound(now - int64(s.cfg.DedupWindow) + 1),
	})
	if err != nil {
		return err
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid() && n < maxIdemTrim; it.Next() {
		nanos, ik, err := parseExpiryKey(it.Key())
		if err != nil {
			return err
		}
		// The key may have been reused after it expired; then a newer
		// expiry entry owns it and only this index entry goes.
		if current, err := s.idemNanos(ik); err != nil {
			return err
		} else if current == nanos {
			if err := b.Delete(ik, nil); err != nil {
				return err
			}
		}
		if err := b.Delete(it.Key(), nil); err != nil {
			return err
		}
		n++
	}
	return it.Error()
}

// idemNanos returns the accept time an idempotency key remembers, or 0.
func (s *Store) idemNanos(ik []byte) (int64, error) {
	v, closer, err := s.db.Get(ik)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	e, err := decodeIdem(v)
	return e.nanos, err
}
