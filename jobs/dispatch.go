package jobs

import (
	"slices"
	"time"
)

// runq is the runnable jobs of one type, oldest first (by creation time,
// then id). Guarded by Service.mu.
type runq struct{ es []*entry }

func (q *runq) add(e *entry) {
	i, _ := slices.BinarySearchFunc(q.es, e, cmpEntry)
	q.es = slices.Insert(q.es, i, e)
}

func (q *runq) remove(e *entry) {
	i, found := slices.BinarySearchFunc(q.es, e, cmpEntry)
	if found && q.es[i] == e {
		q.es = slices.Delete(q.es, i, i+1)
	}
}

func (s *Service) queue(typ string) *runq {
	q := s.queues[typ]
	if q == nil {
		q = &runq{}
		s.queues[typ] = q
	}
	return q
}

func (s *Service) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// dispatchLoop hands runnable jobs to workers with free slots whenever
// something changed (a job became runnable, a slot freed, a worker came)
// and when the earliest retry_at comes.
func (s *Service) dispatchLoop() {
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		next := s.dispatch()
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if !next.IsZero() {
			d := next.Sub(s.clock.Now())
			if d <= 0 {
				continue // came due while dispatching
			}
			timer = s.clock.AfterFunc(d, func() {
				s.mu.Lock()
				s.kickLocked()
				s.mu.Unlock()
			})
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		}
	}
}

// dispatch starts one claim per free slot while jobs are runnable, taking
// the workers in turn so that none starves, and returns when the earliest
// job not yet due becomes due (zero: none waits).
func (s *Service) dispatch() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	var next time.Time
	for progress := true; progress && !s.stopped; {
		progress = false
		n := len(s.workers)
		for i := range n {
			w := s.workers[(s.rotation+i)%n]
			if !w.free() {
				continue
			}
			e := s.pickLocked(w, now, &next)
			if e == nil {
				continue
			}
			s.queue(e.typ).remove(e)
			e.queued, e.claiming = false, true
			w.reserved++
			s.spawnLocked(func() { s.claim(w, e) })
			progress = true
		}
		s.rotation++
	}
	return next
}

// pickLocked returns the oldest due job w can run, and lowers *next to the
// earliest retry_at of the jobs it skipped as not yet due.
func (s *Service) pickLocked(w *Worker, now time.Time, next *time.Time) *entry {
	var best *entry
	consider := func(q *runq) {
		for _, e := range q.es {
			if e.readyAt.After(now) {
				if next.IsZero() || e.readyAt.Before(*next) {
					*next = e.readyAt
				}
				continue
			}
			if best == nil || cmpEntry(e, best) < 0 {
				best = e
			}
			return
		}
	}
	if len(w.types) == 0 {
		for _, q := range s.queues {
			consider(q)
		}
	} else {
		for t := range w.types {
			if q := s.queues[t]; q != nil {
				consider(q)
			}
		}
	}
	return best
}

// claim appends the running event that makes w the holder of e's next
// attempt, then assigns it to w. Of any number of nodes racing for the
// same job, the conditional append lets one win; the others re-fold, see
// it running, and give up.
func (s *Service) claim(w *Worker, e *entry) {
	var claimed time.Time // on s.clock, when the running event was decided
	e.mu.Lock()
	j, wrote, err := s.transitionLocked(s.ctx, e, func(j *Job) (*event, error) {
		now := s.clock.Now()
		if !j.runnable(now) {
			return nil, nil
		}
		claimed = now
		return &event{Event: evRunning, Attempt: j.Attempt + 1, Worker: w.id, LeaseUntil: now.Add(s.lease).UTC()}, nil
	})
	var l *attempt
	s.mu.Lock()
	w.reserved--
	e.claiming = false
	if wrote && !w.gone && !s.stopped {
		l = s.startAttemptLocked(w, e, j, claimed)
	}
	if err == nil {
		s.kickLocked()
	}
	s.mu.Unlock()
	s.syncLocked(e) // back in the queue if the claim did not happen
	if wrote && l == nil {
		// The worker left while the claim was in flight: hand it back.
		s.abandonLocked(e, j.Attempt, false, "worker gone before assignment")
	}
	e.mu.Unlock()
	if err != nil && s.ctx.Err() == nil {
		s.log.Warn("job claim failed", "job", e.id, "worker", w.id, "err", err)
	}
	if l == nil {
		return
	}
	a := Assignment{
		JobID: j.ID, Type: j.Type, Payload: j.Payload, Attempt: j.Attempt,
		Deadline: l.deadline, LeaseUntil: j.LeaseUntil, Channel: j.Channel,
	}
	if err := w.conn.Assign(a); err != nil {
		s.log.Info("job assign failed; handing it back", "job", j.ID, "worker", w.id, "err", err)
		e.mu.Lock()
		s.abandonLocked(e, j.Attempt, false, "assign failed: "+err.Error())
		e.mu.Unlock()
	}
}
