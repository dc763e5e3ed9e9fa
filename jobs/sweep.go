package jobs

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tether-run/tether/store"
)

// readIndex folds every job the index names after the cursor and returns
// the index cursor to go on from and how many jobs it read.
func (s *Service) readIndex(ctx context.Context, after store.Cursor) (store.Cursor, int, error) {
	n := 0
	for {
		res, err := s.st.Read(ctx, IndexChannel, after, 256)
		if err != nil {
			return after, n, err
		}
		for _, m := range res.Messages {
			var ie indexEntry
			if json.Unmarshal(m.Data, &ie) != nil || !ValidID(ie.ID) {
				continue
			}
			s.mu.Lock()
			known := s.entries[ie.ID] != nil && s.entries[ie.ID].known
			s.mu.Unlock()
			if known {
				continue
			}
			e := s.entry(ie.ID)
			e.mu.Lock()
			j, err := s.refreshLocked(ctx, e)
			e.mu.Unlock()
			if err != nil {
				return after, n, err
			}
			if j.State == "" {
				s.forget(e)
				continue
			}
			n++
		}
		if res.Next != "" {
			after = res.Next
		}
		if len(res.Messages) < 256 {
			return after, n, nil
		}
	}
}

// followIndex learns of the jobs other nodes create, as the index grows.
func (s *Service) followIndex(after store.Cursor) {
	for {
		err := s.st.Wait(s.ctx, IndexChannel, after)
		if err == nil {
			after, _, err = s.readIndex(s.ctx, after)
		}
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("jobs: following the index failed", "err", err)
			if !s.pause(s.ctx, s.cfg.HeartbeatInterval) {
				return
			}
		}
	}
}

// sweepInterval is how often the Service looks for expired leases: every
// half heartbeat interval.
func (s *Service) sweepInterval() time.Duration { return s.cfg.HeartbeatInterval / 2 }

// sweepTick is the sweep timer's callback: it sweeps, then sets the timer
// again. Running the sweep in the callback itself (not a goroutine it
// wakes) means a clock moved by hand has swept when the move returns.
func (s *Service) sweepTick() {
	s.sweep()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.afterFuncLocked(s.sweepInterval(), s.sweepTick)
	}
}

// sweep ends every running attempt whose lease passed, whichever node runs
// it: the attempt fails ("lease expired", retried at once) unless a renewal
// written elsewhere shows up when the conditional append conflicts. Every
// node sweeps; the first append wins.
func (s *Service) sweep() {
	now := s.clock.Now()
	var due []*entry
	s.mu.Lock()
	for e := range s.live {
		if e.state == Running && now.After(e.leaseUntil) {
			due = append(due, e)
		}
	}
	s.mu.Unlock()
	for _, e := range due {
		if s.ctx.Err() != nil {
			return
		}
		s.expire(e)
	}
}

func (s *Service) expire(e *entry) {
	e.mu.Lock()
	var n int
	j, wrote, err := s.transitionLocked(s.ctx, e, func(j *Job) (*event, error) {
		if j.State != Running || s.clock.Now().Before(j.LeaseUntil) {
			return nil, nil
		}
		n = j.Attempt
		if j.CancelRequested {
			return &event{Event: evCanceled, Attempt: n, Reason: j.CancelReason}, nil
		}
		return s.failEvent(j, "lease expired", false), nil
	})
	var ended *attempt
	if wrote {
		ended = s.endLocalSuspect(e, n, true)
	}
	e.mu.Unlock()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("jobs: lease sweep failed", "job", e.id, "err", err)
		}
		return
	}
	if !wrote {
		return
	}
	s.m.leaseExpiries.Inc()
	s.log.Warn("job lease expired", "job", e.id, "attempt", n, "worker", j.Worker, "state", j.State)
	if ended != nil {
		ended.w.conn.Fenced(e.id, n, "lease-expired")
	}
}
