package natsstore

import "time"

// Idle channels leave memory.
//
// A Store keeps an entry for every channel it appends to, reads or waits
// on: the newest sequence it knows, its waiters, its sender's queue, its
// tail. A node that serves many channels over time would keep them all, so
// entries unused for Config.ChannelIdle (no append queued, no read, no
// wait) are dropped: a timer (no
// goroutine) looks every quarter of that while any entry exists. An entry
// whose channel has waiters, queued appends or a running sender is kept,
// whatever its age; every path that keeps an entry beyond its lock is one
// of those, and each takes or creates the entry in the same lock that
// counts it (register, enqueue). The next use of a dropped channel starts
// from nothing: an append names predecessor 0, is refused and learns the
// channel's newest message from the stream; a Wait asks the leader.

// addLocked creates the entry of a channel and starts the sweep if none is
// scheduled. The caller holds mu.
func (s *Store) addLocked(name string) *channel {
	c := &channel{appended: time.Now()}
	s.chans[name] = c
	if s.sweep == nil && s.cfg.ChannelIdle > 0 {
		s.sweep = time.AfterFunc(s.cfg.ChannelIdle/4, s.sweepIdle)
	}
	return c
}

// sweepIdle drops the entries idle for ChannelIdle, and schedules itself
// again while entries remain.
func (s *Store) sweepIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closing:
		s.sweep = nil
		return
	default:
	}
	now := time.Now()
	for name, c := range s.chans {
		idle := now.Sub(c.used) > s.cfg.ChannelIdle && now.Sub(c.appended) > s.cfg.ChannelIdle
		if idle && c.waiters == 0 && !c.sending && len(c.queue) == 0 {
			s.dropTailLocked(c)
			delete(s.chans, name)
		}
	}
	if len(s.chans) == 0 {
		s.sweep = nil
		return
	}
	s.sweep.Reset(s.cfg.ChannelIdle / 4)
}
