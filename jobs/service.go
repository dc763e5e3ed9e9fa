package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tether-run/tether/store"
)

// Service runs jobs on one node: it creates, reads and cancels them, follows
// the index of every node's jobs, sweeps expired leases and dispatches
// runnable jobs to the workers attached to it.
//
// Goroutines, all owned by the Service and ended by Stop: the index
// follower, the dispatcher, one per claim in flight, one cancel watcher per
// attempt running on a local worker, and the callbacks of the timers set
// on Config.Clock (the lease sweep, attempt deadline, cancel grace, follow
// grace, the dispatcher's wake-up at the next retry_at).
//
// Lock order: entry.mu before Service.mu. Service.mu is never held during
// store I/O or a WorkerConn call.
type Service struct {
	cfg   Config
	st    store.Store
	clock Clock
	log   *slog.Logger
	m     *metrics
	lease time.Duration
	kick  chan struct{} // cap 1: the dispatcher should look again

	ctx    context.Context // ends on Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine above; Add only under mu while !stopped

	mu       sync.Mutex
	started  bool                // guarded by mu
	stopped  bool                // guarded by mu
	entries  map[string]*entry   // guarded by mu: every job this node knows
	live     map[*entry]struct{} // guarded by mu: the non-final ones
	queues   map[string]*runq    // guarded by mu: runnable jobs by type
	workers  []*Worker           // guarded by mu: attached, not detached
	follows  map[string]*follow  // guarded by mu: followers by job id
	timers   map[Timer]bool      // guarded by mu: pending timer callbacks
	workerN  int                 // guarded by mu: for generated worker ids
	rotation int                 // guarded by mu: the dispatcher's first worker
}

// entry is one job as this node knows it.
type entry struct {
	id string

	// mu is held across every read-fold-decide-append of the job, so this
	// node's own writers never race each other; other nodes are kept out
	// by the conditional append.
	mu   sync.Mutex
	job  Job  // guarded by mu: folded up to job.Cursor
	slim bool // guarded by mu: final, and job's payload and result were dropped to save memory

	// A summary of job for the dispatcher and the sweeper, guarded by
	// Service.mu and kept current by sync.
	typ        string
	created    time.Time
	state      State
	leaseUntil time.Time
	readyAt    time.Time
	known      bool     // a queued event was folded: a real job
	queued     bool     // in its type's runq
	claiming   bool     // a claim is in flight
	local      *attempt // the attempt a local worker runs, if any
}

// New returns a Service for cfg on st: its job channels and index live
// there. log receives a Debug record per transition and Info/Warn for
// failures and lost leases (nil: discard); mr the metrics (nil: none are
// registered). It does nothing until Start.
func New(cfg Config, st store.Store, log *slog.Logger, mr prometheus.Registerer) (*Service, error) {
	if st == nil {
		return nil, errors.New("tether: jobs: New needs a store")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(mr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg: cfg, st: st, clock: cfg.Clock, log: log, m: m,
		lease:   cfg.HeartbeatInterval * time.Duration(cfg.LeaseIntervals),
		kick:    make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		entries: make(map[string]*entry),
		live:    make(map[*entry]struct{}),
		queues:  make(map[string]*runq),
		follows: make(map[string]*follow),
		timers:  make(map[Timer]bool),
	}, nil
}

// Start recovers the jobs the store holds (reading the index and folding
// every job) and starts following the index, sweeping leases and
// dispatching. ctx bounds the recovery only. Jobs whose lease ran out while
// no node was up are retried by the first sweep.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("tether: jobs: already started")
	}
	s.started = true
	s.mu.Unlock()
	after, n, err := s.readIndex(ctx, store.Start)
	if err != nil {
		return fmt.Errorf("tether: jobs: recover: %w", err)
	}
	s.log.Info("jobs recovered", "jobs", n, "node", s.cfg.NodeID)
	s.goLocked(func() { s.followIndex(after) })
	s.goLocked(s.dispatchLoop)
	s.mu.Lock()
	if !s.stopped {
		s.afterFuncLocked(s.sweepInterval(), s.sweepTick)
	}
	s.mu.Unlock()
	return nil
}

// goLocked starts f as an owned goroutine unless the Service stopped.
func (s *Service) goLocked(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spawnLocked(f)
}

// spawnLocked is goLocked with mu held.
func (s *Service) spawnLocked(f func()) bool {
	if s.stopped {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// afterFuncLocked runs f after d on s.clock as an owned callback; Stop
// cancels it.
func (s *Service) afterFuncLocked(d time.Duration, f func()) Timer {
	var t Timer
	t = s.clock.AfterFunc(d, func() {
		s.mu.Lock()
		if s.stopped || !s.timers[t] {
			s.mu.Unlock()
			return
		}
		delete(s.timers, t)
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		f()
	})
	s.timers[t] = true
	return t
}

// stopTimerLocked cancels a timer from afterFuncLocked.
func (s *Service) stopTimerLocked(t Timer) {
	if t != nil {
		t.Stop()
		delete(s.timers, t)
	}
}

// Stop stops dispatching and sweeping and ends the Service's goroutines and
// timers. It does not cancel jobs, and it writes nothing: attempts running
// on this node's workers go on, and their leases run out unless the worker
// reconnects (to this node restarted, or another) and heartbeats them. It
// returns ctx's error if ctx ends first.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Create creates a job for spec and returns it with created set. With an
// idempotency key, the job's id derives from the key, so a retry of the
// same create returns the existing job (whatever spec it was created with)
// with created false.
func (s *Service) Create(ctx context.Context, spec Spec, idempotencyKey string) (job Job, created bool, err error) {
	if err := s.checkSpec(&spec); err != nil {
		return Job{}, false, err
	}
	noWorker := !s.HasWorkerFor(spec.Type)
	if noWorker && s.cfg.RequireWorker {
		return Job{}, false, fmt.Errorf("%w: no worker attached to this node runs type %q", ErrNoWorker, spec.Type)
	}
	now := s.clock.Now()
	id := newID(now)
	if idempotencyKey != "" {
		id = keyID(spec.Sub, idempotencyKey)
	}
	e := s.entry(id)
	e.mu.Lock()
	if e.job.State == "" {
		ev := &event{Event: evQueued, Job: &jobHead{
			ID: id, Type: spec.Type, Payload: spec.Payload, Timeout: spec.Timeout.String(),
			MaxAttempts: spec.MaxAttempts, OnDisconnect: spec.OnDisconnect, Created: now.UTC(), Sub: spec.Sub,
		}}
		job, err = s.appendLocked(ctx, e, ev)
		created = err == nil
	}
	if !created && (err == nil || errors.Is(err, store.ErrConflict)) {
		job, err = s.refreshLocked(ctx, e)
	}
	e.mu.Unlock()
	if err != nil {
		s.forget(e)
		return Job{}, false, err
	}
	if created {
		s.m.created.Inc()
	}
	if noWorker {
		job.Warning = WarnNoWorker(spec.Type)
		if created {
			s.m.createdNoWorker.Inc()
			s.log.Warn("job created for a type no worker runs", "job", id, "type", spec.Type)
		}
	}
	// The index entry makes the job known to every node. Its idempotency
	// key repairs a create that crashed between the two appends: the
	// retry (same Idempotency-Key) appends it then.
	return job, created, s.index(ctx, job)
}

func (s *Service) index(ctx context.Context, j Job) error {
	data, _ := json.Marshal(indexEntry{ID: j.ID, Type: j.Type})
	_, err := s.st.Append(ctx, IndexChannel, data, store.AppendOptions{IdempotencyKey: j.ID})
	if err != nil {
		return fmt.Errorf("tether: jobs: index %s: %w", j.ID, err)
	}
	return nil
}

// HasWorkerFor reports whether a worker attached to this node, and not
// draining, runs jobs of type typ (a worker that announced no types runs
// any).
func (s *Service) HasWorkerFor(typ string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.workers {
		if !w.gone && !w.draining && (len(w.types) == 0 || w.types[typ]) {
			return true
		}
	}
	return false
}

// WarnNoWorker is Job.Warning for a job of type typ that no worker runs.
func WarnNoWorker(typ string) string {
	return "no worker connected to this server runs type " + strconv.Quote(typ) + ": the job waits until one does"
}

func (s *Service) checkSpec(spec *Spec) error {
	if n := len(spec.Type); n == 0 || n > 128 || !store.ValidChannel("x"+spec.Type) {
		return fmt.Errorf("%w: type must be 1-128 bytes of letters, digits, '.', '_', ':', '-'", ErrBadSpec)
	}
	if len(spec.Payload) == 0 {
		spec.Payload = json.RawMessage("null")
	} else if !json.Valid(spec.Payload) {
		return fmt.Errorf("%w: payload is not JSON", ErrBadSpec)
	}
	switch {
	case spec.Timeout < 0:
		return fmt.Errorf("%w: timeout must not be negative", ErrBadSpec)
	case spec.Timeout == 0:
		spec.Timeout = s.cfg.DefaultTimeout
	}
	switch {
	case spec.MaxAttempts < 0 || spec.MaxAttempts > 1000:
		return fmt.Errorf("%w: max_attempts must be 1-1000", ErrBadSpec)
	case spec.MaxAttempts == 0:
		spec.MaxAttempts = DefaultMaxAttempts
	}
	switch spec.OnDisconnect {
	case "":
		spec.OnDisconnect = Cancel
	case Cancel, Detach:
	default:
		return fmt.Errorf("%w: on_disconnect must be cancel or detach", ErrBadSpec)
	}
	return nil
}

// Get returns the job with id, folded from its channel, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (Job, error) {
	e, err := s.load(ctx, id)
	if err != nil {
		return Job{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return s.refreshLocked(ctx, e)
}

// load returns the entry of a job that exists, reading it from the store
// when this node does not know it yet (created on another node, whose
// index entry the follower has not read yet, or never indexed: then the
// index entry is appended now).
func (s *Service) load(ctx context.Context, id string) (*entry, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	s.mu.Lock()
	e := s.entries[id]
	known := e != nil && e.known
	s.mu.Unlock()
	if known {
		return e, nil
	}
	e = s.entry(id)
	e.mu.Lock()
	j, err := s.refreshLocked(ctx, e)
	e.mu.Unlock()
	if err == nil && j.State == "" {
		err = ErrNotFound
	}
	if err == nil {
		err = s.index(ctx, j)
	}
	if err != nil {
		s.forget(e)
		return nil, err
	}
	return e, nil
}

// entry returns the entry for id, making an empty one if needed.
func (s *Service) entry(id string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil {
		e = &entry{id: id}
		s.entries[id] = e
	}
	return e
}

// forget drops an entry that turned out not to be a job.
func (s *Service) forget(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !e.known && s.entries[e.id] == e {
		delete(s.entries, e.id)
	}
}

// List returns up to limit jobs, newest first, in state (empty: any state).
// limit < 1 means 100. Jobs this node has not seen in the index yet (created
// on another node within the last moments) may be missing.
func (s *Service) List(ctx context.Context, state State, limit int) ([]Job, error) {
	if state != "" && !state.Valid() {
		return nil, fmt.Errorf("%w: unknown state %q", ErrBadSpec, state)
	}
	if limit < 1 {
		limit = 100
	}
	s.mu.Lock()
	all := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		if e.known {
			all = append(all, e)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b *entry) int { return -cmpEntry(a, b) })
	var out []Job
	for _, e := range all {
		s.mu.Lock()
		st := e.state
		s.mu.Unlock()
		if state != "" && st.Final() && st != state {
			continue // final states never change: no read needed
		}
		e.mu.Lock()
		j, err := s.refreshLocked(ctx, e)
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if state == "" || j.State == state {
			out = append(out, j)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// cmpEntry orders entries by creation, then id.
func cmpEntry(a, b *entry) int {
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// Cancel cancels the job with id: a queued or retrying job becomes canceled
// at once; a running one gets cancel_requested, its worker is told, and it
// becomes canceled when the handler returns or CancelGrace passes. A final
// job is returned unchanged. reason empty means ReasonAPI.
func (s *Service) Cancel(ctx context.Context, id, reason string) (Job, error) {
	if reason == "" {
		reason = ReasonAPI
	}
	e, err := s.load(ctx, id)
	if err != nil {
		return Job{}, err
	}
	e.mu.Lock()
	j, _, err := s.transitionLocked(ctx, e, func(j *Job) (*event, error) {
		switch {
		case j.State.Final() || (j.State == Running && j.CancelRequested):
			return nil, nil
		case j.State == Running:
			return &event{Event: evCancelRequested, Attempt: j.Attempt, Reason: reason}, nil
		default:
			return &event{Event: evCanceled, Attempt: j.Attempt, Reason: reason}, nil
		}
	})
	var l *attempt
	if err == nil && j.State == Running && j.CancelRequested {
		s.mu.Lock()
		if e.local != nil && e.local.n == j.Attempt {
			l = e.local
		}
		s.mu.Unlock()
	}
	e.mu.Unlock()
	if l != nil {
		s.pushCancel(l, j.CancelReason, j.cancelAt)
	}
	return j, err
}

// Await returns the job once it is final, or ctx's cause with the job as
// last seen when ctx ends first.
func (s *Service) Await(ctx context.Context, id string) (Job, error) {
	for {
		j, err := s.Get(ctx, id)
		if err != nil || j.State.Final() {
			return j, err
		}
		if err := s.st.Wait(ctx, j.Channel, j.Cursor); err != nil {
			return j, err
		}
	}
}

// refreshLocked reads e's channel past what was folded and returns the
// job. e.mu is held.
func (s *Service) refreshLocked(ctx context.Context, e *entry) (Job, error) {
	// A slim entry (a final job's summary) is folded again from its
	// start into a fresh Job, swapped in only once the read succeeded: a
	// failed read (a context ending) leaves the summary as it was.
	job := &e.job
	if e.slim {
		job = &Job{}
	}
	after := cmp.Or(job.Cursor, store.Start)
	for {
		res, err := s.st.Read(ctx, ChannelPrefix+e.id, after, 256)
		if err != nil {
			return e.job, err
		}
		fold(job, res.Messages)
		if len(res.Messages) < 256 {
			break
		}
		after = res.Next
	}
	if e.slim {
		e.job, e.slim = *job, false
	}
	return s.syncLocked(e), nil
}

// appendLocked appends ev to e's channel on condition that nothing was
// appended since e.job.Cursor, and folds it. e.mu is held.
func (s *Service) appendLocked(ctx context.Context, e *entry, ev *event) (Job, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return e.job, err
	}
	expect := cmp.Or(e.job.Cursor, store.Start)
	res, err := s.st.Append(ctx, ChannelPrefix+e.id, data, store.AppendOptions{ExpectLatest: expect})
	if err != nil {
		return e.job, err
	}
	apply(&e.job, ev, res.Time)
	e.job.Cursor = res.ID
	if e.job.State.Final() {
		s.m.ended.WithLabelValues(string(e.job.State)).Inc()
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "job event", slog.String("job", e.id), slog.String("event", ev.Event),
			slog.Int("attempt", ev.Attempt), slog.String("state", string(e.job.State)), slog.String("node", s.cfg.NodeID))
	}
	return s.syncLocked(e), nil
}

// transitionLocked decides on e's state and appends what decide returns,
// re-folding and deciding again when another writer came first. decide
// returning a nil event writes nothing. It decides on the folded state
// first without reading (a stale state only costs a conflict) and re-reads
// before any decision not to write. e.mu is held.
func (s *Service) transitionLocked(ctx context.Context, e *entry, decide func(j *Job) (*event, error)) (Job, bool, error) {
	cur, fresh := e.job, false
	if e.job.Cursor == "" || e.slim {
		j, err := s.refreshLocked(ctx, e)
		if err != nil {
			return j, false, err
		}
		cur, fresh = j, true
	}
	for {
		j := cur
		ev, err := decide(&j)
		if (ev == nil || err != nil) && !fresh {
			if cur, err = s.refreshLocked(ctx, e); err != nil {
				return cur, false, err
			}
			fresh = true
			continue
		}
		if err != nil || ev == nil {
			return j, false, err
		}
		j, err = s.appendLocked(ctx, e, ev)
		if err == nil {
			return j, true, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return j, false, err
		}
		if ev.Event == evRunning {
			s.m.claimConflicts.Inc()
		}
		if cur, err = s.refreshLocked(ctx, e); err != nil {
			return cur, false, err
		}
		fresh = true
	}
}

// failEvent is what a failed attempt of j appends: retrying, or failed
// once MaxAttempts attempts failed. A handler's error waits for the
// backoff; an attempt lost with its worker (lease expired, connection
// gone) is retried at once, so that it runs elsewhere within the sweep.
func (s *Service) failEvent(j *Job, msg string, backoff bool) *event {
	if j.failures() >= j.MaxAttempts {
		return &event{Event: evFailed, Attempt: j.Attempt, Error: msg}
	}
	at := s.clock.Now()
	if backoff {
		at = at.Add(s.cfg.Backoff(j.failures()))
	}
	return &event{Event: evRetrying, Attempt: j.Attempt, Error: msg, RetryAt: at.UTC()}
}

// syncLocked copies e.job's summary into the fields the dispatcher and the
// sweeper read, queues or unqueues e, and returns a copy of the job. A
// final job's payload and result are then dropped from memory; the next
// read folds them again. e.mu is held.
func (s *Service) syncLocked(e *entry) Job {
	j := e.job
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.State == "" {
		return j
	}
	if !e.known {
		e.known, e.typ, e.created = true, j.Type, j.Created
	}
	e.state, e.leaseUntil, e.readyAt = j.State, j.LeaseUntil, j.RetryAt
	if j.State.Final() {
		delete(s.live, e)
		e.job = Job{ID: j.ID, Channel: j.Channel, Type: j.Type, State: j.State, Created: j.Created, Cursor: j.Cursor}
		e.slim = true
	} else {
		s.live[e] = struct{}{}
	}
	want := (j.State == Queued || j.State == Retrying) && !e.claiming
	switch q := s.queue(e.typ); {
	case want && !e.queued:
		q.add(e)
		e.queued = true
		s.kickLocked()
	case !want && e.queued:
		q.remove(e)
		e.queued = false
	case want:
		s.kickLocked() // readyAt may have moved
	}
	return j
}
