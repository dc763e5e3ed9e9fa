package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tether-run/tether/store"
)

// Worker is one attached worker connection. The protocol session calls its
// methods as frames arrive; they are safe for concurrent use.
type Worker struct {
	s           *Service
	id          string
	types       map[string]bool // empty: any type
	concurrency int
	conn        WorkerConn

	// Guarded by Service.mu.
	running  map[string]*attempt // by job id
	reserved int                 // claims in flight
	draining bool
	gone     bool
	// suspect is set when an attempt of this worker lost its lease: a
	// worker that stopped answering (SIGSTOP, a long GC pause, a
	// partition) must not be handed job after job that would each expire
	// in turn. Its next Heartbeat clears it.
	suspect bool
}

// free reports whether w may take one more job. Service.mu is held.
func (w *Worker) free() bool {
	return !w.draining && !w.gone && !w.suspect && len(w.running)+w.reserved < w.concurrency
}

// ID is the worker's id, as written in running events.
func (w *Worker) ID() string { return w.id }

// attempt is an attempt running on a local worker: its deadline and cancel
// grace timer and its cancel watcher. Fields other than the immutable ones
// are guarded by Service.mu.
type attempt struct {
	w        *Worker
	e        *entry
	job      string
	n        int
	deadline time.Time

	timer      Timer              // the deadline, then the cancel grace
	stopWatch  context.CancelFunc // ends the cancel watcher
	cancelSent bool               // a cancel was pushed
	timedOut   bool               // the cancel was the deadline's
	done       bool
}

// AttachWorker attaches a worker connection that runs jobs of types (none:
// any type), at most concurrency at a time (less than 1 means 1). id names
// the worker in running events and must be unique among live workers; an
// empty id gets one from the node id. A worker that reconnects with the
// same id and heartbeats its attempts gets them back (see Heartbeat). The
// Service starts assigning to it at once.
func (s *Service) AttachWorker(id string, types []string, concurrency int, c WorkerConn) (*Worker, error) {
	if c == nil {
		return nil, errors.New("tether: jobs: AttachWorker needs a WorkerConn")
	}
	for _, t := range types {
		if err := s.checkSpec(&Spec{Type: t}); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || !s.started {
		return nil, ErrStopped
	}
	if id == "" {
		s.workerN++
		id = s.cfg.NodeID + "/w" + strconv.Itoa(s.workerN)
	}
	w := &Worker{s: s, id: id, types: make(map[string]bool), concurrency: max(concurrency, 1), conn: c,
		running: make(map[string]*attempt)}
	for _, t := range types {
		w.types[t] = true
	}
	s.workers = append(s.workers, w)
	s.kickLocked()
	s.log.Debug("worker attached", "worker", id, "types", types, "concurrency", w.concurrency)
	return w, nil
}

// startAttemptLocked records a claimed attempt of e on w and starts its
// deadline timer and cancel watcher. claimed is when the attempt began on
// s.clock. Service.mu is held.
func (s *Service) startAttemptLocked(w *Worker, e *entry, j Job, claimed time.Time) *attempt {
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = s.cfg.DefaultTimeout
	}
	l := &attempt{w: w, e: e, job: j.ID, n: j.Attempt, deadline: claimed.Add(timeout)}
	w.running[j.ID] = l
	e.local = l
	s.m.running.Inc()
	l.timer = s.afterFuncLocked(l.deadline.Sub(s.clock.Now()), func() { s.onDeadline(l) })
	ctx, cancel := context.WithCancel(s.ctx)
	l.stopWatch = cancel
	cursor := j.Cursor
	s.spawnLocked(func() { s.watchAttempt(ctx, l, cursor) })
	return l
}

// endAttemptLocked forgets a local attempt and frees its slot; false if it
// had ended already. Service.mu is held.
func (s *Service) endAttemptLocked(l *attempt) bool {
	if l == nil || l.done {
		return false
	}
	l.done = true
	s.stopTimerLocked(l.timer)
	l.stopWatch()
	if l.w.running[l.job] == l {
		delete(l.w.running, l.job)
	}
	if l.e.local == l {
		l.e.local = nil
	}
	s.m.running.Dec()
	s.kickLocked()
	return true
}

// endLocal ends e's local attempt n, if that is what runs here. e.mu is
// held.
func (s *Service) endLocal(e *entry, n int) *attempt { return s.endLocalSuspect(e, n, false) }

// endLocalSuspect is endLocal that also marks the worker suspect (no new
// job until it heartbeats) in the same step that frees its slot, so the
// dispatcher never sees the slot free and the worker trusted.
func (s *Service) endLocalSuspect(e *entry, n int, suspect bool) *attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := e.local; l != nil && l.n == n {
		if suspect {
			l.w.suspect = true
		}
		if s.endAttemptLocked(l) {
			return l
		}
	}
	return nil
}

// pushCancel tells l's worker to cancel the handler's context, once, and
// starts the cancel grace. at is when the cancel was stored.
func (s *Service) pushCancel(l *attempt, reason string, at time.Time) {
	s.mu.Lock()
	if l.done || l.cancelSent {
		s.mu.Unlock()
		return
	}
	l.cancelSent = true
	s.stopTimerLocked(l.timer)
	l.timer = s.afterFuncLocked(s.cfg.CancelGrace, func() { s.onGrace(l) })
	s.mu.Unlock()
	l.w.conn.Cancel(l.job, l.n, reason)
	if !at.IsZero() {
		// at is the store's time, so this is measured on the real clock.
		s.m.cancelPush.Observe(time.Since(at).Seconds())
	}
	s.log.Debug("job cancel pushed", "job", l.job, "attempt", l.n, "worker", l.w.id, "reason", reason)
}

// onDeadline runs when an attempt's timeout passes: its handler is
// cancelled like any other, and the attempt then fails with "timeout".
func (s *Service) onDeadline(l *attempt) {
	s.mu.Lock()
	if l.done || l.cancelSent {
		s.mu.Unlock()
		return
	}
	l.timedOut, l.cancelSent = true, true
	l.timer = s.afterFuncLocked(s.cfg.CancelGrace, func() { s.onGrace(l) })
	s.mu.Unlock()
	l.w.conn.Cancel(l.job, l.n, "timeout")
	s.log.Info("job attempt timed out", "job", l.job, "attempt", l.n, "worker", l.w.id)
}

// onGrace runs when a cancelled handler did not return within CancelGrace:
// the attempt is fenced off, the job recorded canceled (or, after a
// timeout, failed), and the worker told to drop it and free its slot.
func (s *Service) onGrace(l *attempt) {
	e := l.e
	e.mu.Lock()
	_, wrote, err := s.transitionLocked(s.ctx, e, func(j *Job) (*event, error) {
		switch {
		case !j.running(l.n):
			return nil, nil
		case j.CancelRequested:
			return &event{Event: evCanceled, Attempt: l.n, Reason: j.CancelReason}, nil
		default:
			return s.failEvent(j, "timeout", true), nil
		}
	})
	ended := s.endLocal(e, l.n)
	e.mu.Unlock()
	if err != nil {
		s.log.Warn("job fence after cancel grace failed", "job", l.job, "attempt", l.n, "err", err)
	}
	if ended != nil {
		l.w.conn.Fenced(l.job, l.n, "cancel-grace")
		s.log.Info("job attempt fenced: handler ignored its cancel", "job", l.job, "attempt", l.n,
			"worker", l.w.id, "recorded", wrote)
	}
}

// watchAttempt follows the channel of an attempt running on a local worker,
// so that what another node writes reaches the worker: a cancel is pushed,
// and an attempt ended elsewhere (lease expired on another node) is fenced.
func (s *Service) watchAttempt(ctx context.Context, l *attempt, cursor store.Cursor) {
	e := l.e
	for {
		if err := s.st.Wait(ctx, ChannelPrefix+e.id, cursor); err != nil {
			if ctx.Err() != nil || !s.pause(ctx, s.cfg.HeartbeatInterval/2) {
				return
			}
			continue
		}
		e.mu.Lock()
		j, err := s.refreshLocked(ctx, e)
		var ended *attempt
		if err == nil && !j.running(l.n) {
			ended = s.endLocal(e, l.n)
		}
		e.mu.Unlock()
		switch {
		case err != nil:
			if ctx.Err() != nil || !s.pause(ctx, s.cfg.HeartbeatInterval/2) {
				return
			}
		case ended != nil:
			l.w.conn.Fenced(l.job, l.n, "attempt-ended")
			s.log.Info("job attempt ended elsewhere; worker told", "job", l.job, "attempt", l.n, "state", j.State)
			return
		case !j.running(l.n):
			return
		case j.CancelRequested:
			s.pushCancel(l, j.CancelReason, j.cancelAt)
		}
		cursor = j.Cursor
	}
}

// pause waits d on s.clock or until ctx ends; false if ctx ended.
func (s *Service) pause(ctx context.Context, d time.Duration) bool {
	passed := make(chan struct{})
	t := s.clock.AfterFunc(d, func() { close(passed) })
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-passed:
		return true
	}
}

// abandonLocked ends attempt n of e without an outcome from its handler:
// handed back (released, not counted) or, when fail, failed ("worker
// gone": retried at once, counted). A job whose cancel was requested is
// recorded canceled instead. e.mu is held.
func (s *Service) abandonLocked(e *entry, n int, fail bool, msg string) {
	_, _, err := s.transitionLocked(s.ctx, e, func(j *Job) (*event, error) {
		switch {
		case !j.running(n):
			return nil, nil
		case j.CancelRequested:
			return &event{Event: evCanceled, Attempt: n, Reason: j.CancelReason}, nil
		case fail:
			return s.failEvent(j, msg, false), nil
		default:
			return &event{Event: evReleased, Attempt: n, Reason: msg}, nil
		}
	})
	s.endLocal(e, n)
	if err != nil && s.ctx.Err() == nil {
		s.log.Warn("job hand-back failed; the lease will end it", "job", e.id, "attempt", n, "err", err)
	}
}

// Heartbeat renews the leases of the given attempts (job id → attempt). An
// attempt that is no longer running is fenced: the worker gets a Fenced
// push for it. An attempt still running under this worker's id that this
// node did not assign (the worker reconnected) is adopted: its cancels and
// deadline are handled here from now on.
//
// Workers heartbeat every HeartbeatInterval even with no attempts (an
// empty map): after one of its attempts lost its lease, a worker gets no
// new job until its next heartbeat shows it is alive again.
func (w *Worker) Heartbeat(ctx context.Context, attempts map[string]int) error {
	w.s.mu.Lock()
	if w.suspect {
		w.suspect = false
		w.s.kickLocked()
	}
	w.s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(attempts))
	for id, n := range attempts {
		wg.Go(func() {
			if err := w.renew(ctx, id, n); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func (w *Worker) renew(ctx context.Context, id string, n int) error {
	s := w.s
	e, err := s.load(ctx, id)
	if errors.Is(err, ErrNotFound) {
		w.conn.Fenced(id, n, "unknown-job")
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	j, _, err := s.transitionLocked(ctx, e, func(j *Job) (*event, error) {
		if !j.running(n) || j.Worker != w.id {
			return nil, ErrFenced
		}
		return &event{Event: evLease, Attempt: n, LeaseUntil: s.clock.Now().Add(s.lease).UTC()}, nil
	})
	var adopted, cancel *attempt
	if errors.Is(err, ErrFenced) {
		// A heartbeat that crossed the attempt's own completion needs no
		// fence: the worker has just reported the outcome.
		if s.endLocal(e, n) == nil && j.State.Final() && j.Attempt == n && j.Worker == w.id {
			e.mu.Unlock()
			return nil
		}
	} else if err == nil {
		s.mu.Lock()
		if e.local == nil && !w.gone && !s.stopped {
			// The attempt's start is the store's time: count the
			// time since on the real clock, the rest on s.clock.
			adopted = s.startAttemptLocked(w, e, j, s.clock.Now().Add(-time.Since(j.Started)))
			if j.CancelRequested {
				cancel = adopted
			}
		}
		s.mu.Unlock()
	}
	e.mu.Unlock()
	switch {
	case errors.Is(err, ErrFenced):
		w.conn.Fenced(id, n, "lease-lost")
		s.log.Info("job lease lost: heartbeat of a stale attempt", "job", id, "attempt", n, "worker", w.id, "state", j.State)
		return nil
	case err != nil:
		return fmt.Errorf("tether: jobs: renew %s: %w", id, err)
	}
	if adopted != nil {
		s.log.Info("job attempt adopted by a reconnected worker", "job", id, "attempt", n, "worker", w.id)
	}
	if cancel != nil {
		s.pushCancel(cancel, j.CancelReason, time.Time{})
	}
	return nil
}

// Progress records a progress report of an attempt, or returns ErrFenced
// when the attempt is no longer the job's running attempt.
func (w *Worker) Progress(ctx context.Context, jobID string, attempt int, data json.RawMessage) error {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return w.write(ctx, jobID, attempt, false, func(j *Job) *event {
		return &event{Event: evProgress, Attempt: attempt, Data: data}
	})
}

// Complete records how an attempt ended, or returns ErrFenced when the
// attempt is no longer the job's running attempt (a stale attempt cannot
// overwrite an outcome). Either way the slot is freed.
//
// A result wins over a cancel that came too late to stop the handler. An
// error or Canceled after a requested cancel records canceled; otherwise
// an error retries (with backoff) or fails at MaxAttempts.
func (w *Worker) Complete(ctx context.Context, jobID string, attempt int, o Outcome) error {
	s := w.s
	s.mu.Lock()
	timedOut := false
	if l := w.running[jobID]; l != nil && l.n == attempt {
		timedOut = l.timedOut
	}
	s.mu.Unlock()
	return w.write(ctx, jobID, attempt, true, func(j *Job) *event {
		switch {
		case o.Error == "" && !o.Canceled:
			return &event{Event: evSucceeded, Attempt: attempt, Result: o.Result}
		case j.CancelRequested:
			return &event{Event: evCanceled, Attempt: attempt, Reason: j.CancelReason}
		}
		msg := o.Error
		switch {
		case timedOut && msg == "":
			msg = "timeout"
		case timedOut:
			msg = "timeout: " + msg
		case msg == "":
			msg = "canceled by the worker"
		}
		return s.failEvent(j, msg, true)
	})
}

// Release hands a running attempt back (worker shutdown): the job is
// queued again at once, without counting the attempt (or canceled, if a
// cancel was requested). It frees the slot.
func (w *Worker) Release(ctx context.Context, jobID string, attempt int) error {
	return w.write(ctx, jobID, attempt, true, func(j *Job) *event {
		if j.CancelRequested {
			return &event{Event: evCanceled, Attempt: attempt, Reason: j.CancelReason}
		}
		return &event{Event: evReleased, Attempt: attempt, Reason: "worker-shutdown"}
	})
}

// write appends what ev returns for a running attempt of this worker, or
// returns ErrFenced. end frees the slot afterwards (and on ErrFenced).
func (w *Worker) write(ctx context.Context, jobID string, attempt int, end bool, ev func(j *Job) *event) error {
	s := w.s
	s.mu.Lock()
	w.suspect = false // it answers again
	s.mu.Unlock()
	e, err := s.load(ctx, jobID)
	if errors.Is(err, ErrNotFound) {
		return ErrFenced
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _, err = s.transitionLocked(ctx, e, func(j *Job) (*event, error) {
		if !j.running(attempt) || j.Worker != w.id {
			return nil, ErrFenced
		}
		return ev(j), nil
	})
	if end || errors.Is(err, ErrFenced) {
		s.endLocal(e, attempt)
	}
	if errors.Is(err, ErrFenced) {
		s.log.Info("job write of a stale attempt refused", "job", jobID, "attempt", attempt, "worker", w.id)
	}
	return err
}

// Drain stops assigning to this worker; what it runs continues.
func (w *Worker) Drain() {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.draining = true
}

// Detach ends the worker: nothing more is assigned. departed means the
// connection ended without handing its attempts back (the worker died or
// was cut off): its running attempts fail at once ("worker gone", retried
// without waiting for the lease or the backoff). Otherwise (a server stop)
// they are left to their leases, so a worker that reconnects in time keeps
// them. Detach returns when the attempts are recorded.
func (w *Worker) Detach(departed bool) {
	s := w.s
	s.mu.Lock()
	w.gone = true
	for i, x := range s.workers {
		if x == w {
			s.workers = append(s.workers[:i:i], s.workers[i+1:]...)
			break
		}
	}
	var ls []*attempt
	for _, l := range w.running {
		ls = append(ls, l)
	}
	if !departed {
		for _, l := range ls {
			s.endAttemptLocked(l)
		}
	}
	s.mu.Unlock()
	s.log.Debug("worker detached", "worker", w.id, "departed", departed, "running", len(ls))
	if !departed {
		return
	}
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			l.e.mu.Lock()
			defer l.e.mu.Unlock()
			s.abandonLocked(l.e, l.n, true, "worker gone")
		})
	}
	wg.Wait()
}
