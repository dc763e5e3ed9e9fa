package pebblestore

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The store keeps the state of the channels in use in memory (Store.chans):
// their bounds, for readers, and their waiters. It is a cache of what the
// channel meta on disk says, published after each commit. A channel unused
// for Config.ChannelIdle with no Wait registered is dropped from it, and
// loaded from its meta again when next used, so memory follows the
// channels in use rather than every channel ever touched.
//
// Who changes the cache:
//   - the committer publishes the channels a commit changed (creating their
//     entries) and drops idle ones; both under mu, and never while a batch
//     is being built, so an entry the committer works from stays;
//   - a reader that misses loads the meta from disk and adds it, unless an
//     entry appeared meanwhile (a publish, which is newer) or one was
//     dropped meanwhile (the meta it read may be older than what was
//     published and dropped since): then it tries again. Store.dropped
//     counts the drops, so a reader can tell.
//
// The committer itself reads a missing channel's meta from disk without
// adding it: it is the only writer of metas, so what it reads is current.

// channel is the in-memory state of one channel. The committer writes first
// and last under mu after the batch that moved them is durable, so a reader
// never sees a seq before it is on disk, nor seq n+1 before n.
type channel struct {
	first uint64 // guarded by mu; first retained seq, > last when none
	last  uint64 // guarded by mu; last appended seq, 0 when none

	// notify is closed and cleared when last moves; nil while nobody
	// waits. waiters counts Waits holding this channel. Both guarded by mu.
	notify  chan struct{}
	waiters int

	// firstNanos is the accept time of message first, 0 when not known.
	// Guarded by mu; written by the committer only. Used to skip channels
	// with nothing to age out.
	firstNanos int64

	// used is Store.clock when the channel was last used.
	used atomic.Int64
}

// DefaultChannelIdle is how long a channel's state stays in memory after
// its last use when Config.ChannelIdle is zero.
const DefaultChannelIdle = time.Minute

// sweepChunk bounds how many entries one hold of mu drops, so that readers
// and the committer's publish wait a short moment at most.
const sweepChunk = 1024

// touch marks c used now. The clock is coarse (set on each committer
// tick), so a hot channel is written at most once per tick.
func (s *Store) touch(c *channel) {
	if now := s.clock.Load(); c.used.Load() != now {
		c.used.Store(now)
	}
}

// visible returns the published first and last seq of a channel, loading
// its meta from disk if it is not in memory. A channel never appended to is
// (1, 0). The caller holds life.
func (s *Store) visible(name string) (first, last uint64, err error) {
	s.mu.RLock()
	if c := s.chans[name]; c != nil {
		s.touch(c)
		first, last = c.first, c.last
		s.mu.RUnlock()
		return first, last, nil
	}
	s.mu.RUnlock()
	c, err := s.lockedEntry(name, false)
	if err != nil {
		return 0, 0, err
	}
	if c == nil {
		return 1, 0, nil
	}
	first, last = c.first, c.last
	s.mu.Unlock()
	return first, last, nil
}

// lockedEntry returns a channel's in-memory entry with mu locked, loading
// it from disk when it is missing. A channel with no meta on disk gets an
// entry only when create is set; otherwise lockedEntry returns nil with mu
// unlocked. On error mu is unlocked. The caller holds life.
func (s *Store) lockedEntry(name string, create bool) (*channel, error) {
	for {
		s.mu.Lock()
		if c := s.chans[name]; c != nil {
			s.touch(c)
			return c, nil
		}
		dropped := s.dropped
		s.mu.Unlock()

		m, found, err := s.readMeta(name)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if c := s.chans[name]; c != nil { // published meanwhile: newer
			s.touch(c)
			return c, nil
		}
		if s.dropped != dropped {
			s.mu.Unlock()
			continue // m may be older than an entry dropped meanwhile
		}
		if !found && !create {
			s.mu.Unlock()
			return nil, nil
		}
		c := &channel{first: 1}
		if found {
			c.first, c.last = m.first, m.last
		}
		s.touch(c)
		s.addLocked(name, c)
		return c, nil
	}
}

// readMeta reads a channel's meta from disk. The caller holds life or is
// the committer.
func (s *Store) readMeta(name string) (meta, bool, error) {
	v, closer, err := s.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return meta{}, false, nil
	}
	if err != nil {
		return meta{}, false, err
	}
	defer closer.Close()
	m, err := decodeMeta(v)
	return m, err == nil, err
}

// current returns a channel's state for the committer: from memory, or
// from disk, without adding it to memory (publish does, after the commit).
func (s *Store) current(name string) (channelEdit, error) {
	s.mu.RLock()
	if c := s.chans[name]; c != nil {
		e := channelEdit{first: c.first, last: c.last, firstNanos: c.firstNanos}
		s.mu.RUnlock()
		return e, nil
	}
	s.mu.RUnlock()
	m, found, err := s.readMeta(name)
	if err != nil || !found {
		return channelEdit{first: 1}, err
	}
	return channelEdit{first: m.first, last: m.last}, nil // firstNanos unknown: the trimmer looks
}

// addLocked adds an entry to chans. The caller holds mu.
func (s *Store) addLocked(name string, c *channel) {
	s.chans[name] = c
	s.chansPeak = max(s.chansPeak, len(s.chans))
}

// dropLocked removes an entry from chans. The caller holds mu.
func (s *Store) dropLocked(name string) {
	delete(s.chans, name)
	s.dropped++
}

// publish makes a committed batch visible: new bounds for readers, and a
// wakeup for every Wait on a channel whose last moved.
func (s *Store) publish(edits map[string]*channelEdit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range edits {
		c := s.chans[name]
		if c == nil {
			c = &channel{}
			s.addLocked(name, c)
		}
		s.touch(c)
		moved := e.last != c.last
		c.first, c.last, c.firstNanos = e.first, e.last, e.firstNanos
		if moved && c.notify != nil {
			close(c.notify)
			c.notify = nil
		}
	}
}

// publishCold makes visible a trim of channels that were not in memory:
// an entry a reader added since gets the new bounds, and the drop count
// moves, so that a reader who read the old meta and has not added it yet
// reads it again. No Wait can be on such a channel (last did not move).
func (s *Store) publishCold(edits map[string]*channelEdit) {
	if len(edits) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range edits {
		if c := s.chans[name]; c != nil {
			c.first, c.firstNanos = e.first, e.firstNanos
		}
	}
	s.dropped++
}

// evictIdle runs on the committer every trim tick: it moves the coarse
// clock and, every ChannelIdle/8, drops the entries of channels unused for
// ChannelIdle that no Wait holds. A map keeps the room of the most entries
// it ever held, so once the entries have fallen below a quarter of that,
// evictIdle moves them into a new map and the old one is freed.
func (s *Store) evictIdle() {
	now := s.cfg.Now().UnixNano()
	s.clock.Store(now)
	idle := int64(s.cfg.ChannelIdle)
	if idle < 0 || now-s.lastSweep < idle/8 {
		return
	}
	s.lastSweep = now
	var names []string
	s.mu.RLock()
	for name, c := range s.chans {
		if c.waiters == 0 && now-c.used.Load() >= idle {
			names = append(names, name)
		}
	}
	s.mu.RUnlock()
	for len(names) > 0 {
		chunk := names[:min(len(names), sweepChunk)]
		names = names[len(chunk):]
		s.mu.Lock()
		for _, name := range chunk {
			// Used or waited on since the look above: keep it.
			if c := s.chans[name]; c != nil && c.waiters == 0 && now-c.used.Load() >= idle {
				s.dropLocked(name)
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.chans); n < s.chansPeak/4 {
		fresh := make(map[string]*channel, n)
		for name, c := range s.chans {
			fresh[name] = c
		}
		s.chans, s.chansPeak = fresh, n
	}
}

// reload moves the channels in memory to what the disk holds, waking the
// waiters of those whose last moved. It runs after the committer reopened
// the database, which may hold less than was published (a trim not synced
// before a commit failed).
func (s *Store) reload() error {
	s.mu.RLock()
	names := make([]string, 0, len(s.chans))
	for name := range s.chans {
		names = append(names, name)
	}
	s.mu.RUnlock()
	edits := map[string]*channelEdit{}
	for _, name := range names {
		m, found, err := s.readMeta(name)
		if err != nil {
			return err
		}
		if found {
			edits[name] = &channelEdit{first: m.first, last: m.last}
		}
	}
	s.publish(edits)
	return nil
}

// channelCount returns how many channels have state in memory.
func (s *Store) channelCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.chans)
}
