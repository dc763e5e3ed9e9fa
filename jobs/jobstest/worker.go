package jobstest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/tether-run/tether/jobs"
)

// Handler runs one attempt. ctx ends when the server pushes a cancel (or
// the attempt is fenced). progress reports progress through the server.
type Handler func(ctx context.Context, a jobs.Assignment, progress func(data string) error) (json.RawMessage, error)

// Config configures a Worker.
type Config struct {
	ID          string   // empty: the Service picks one
	Types       []string // empty: any type
	Concurrency int      // zero: 1
	// Heartbeat is how often running attempts are heartbeated. Zero means
	// no heartbeats at all.
	Heartbeat time.Duration
	// Clock times the heartbeats. Nil means the real time. With a Clock,
	// each heartbeat runs within the Advance that reaches it.
	Clock   jobs.Clock
	Handler Handler
	// IgnoreCancel makes the worker not cancel the handler's context on a
	// cancel push (a handler that ignores its context).
	IgnoreCancel bool
}

// Done is an attempt that ended on this worker.
type Done struct {
	JobID    string
	Attempt  int
	Outcome  jobs.Outcome
	Err      error // what Complete answered: nil, jobs.ErrFenced, ...
	Canceled bool  // the handler's context was cancelled
	Start    time.Time
	End      time.Time
}

// Cancel is a cancel push the worker received.
type Cancel struct {
	JobID   string
	Attempt int
	Reason  string
	At      time.Time
}

// Worker is an in-process worker attached to a jobs.Service.
type Worker struct {
	cfg Config
	W   *jobs.Worker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool            // guarded by mu: no more heartbeats
	beat     jobs.Timer      // guarded by mu: the next heartbeat
	running  map[string]*run // guarded by mu
	paused   chan struct{}   // guarded by mu: non-nil while paused
	dones    []Done          // guarded by mu
	cancels  []Cancel        // guarded by mu
	fenced   []Cancel        // guarded by mu
	assigned []jobs.Assignment
	changed  chan struct{} // guarded by mu: closed and replaced on every record
}

type run struct {
	a      jobs.Assignment
	cancel context.CancelFunc
	at     time.Time
}

// Attach attaches a new worker to s. Close detaches it.
func Attach(s *jobs.Service, cfg Config) (*Worker, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{cfg: cfg, ctx: ctx, cancel: cancel, running: make(map[string]*run), changed: make(chan struct{})}
	jw, err := s.AttachWorker(cfg.ID, cfg.Types, cfg.Concurrency, w)
	if err != nil {
		cancel()
		return nil, err
	}
	w.mu.Lock()
	w.W = jw
	w.scheduleLocked()
	w.mu.Unlock()
	return w, nil
}

func (w *Worker) worker() *jobs.Worker {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.W
}

// Assign implements jobs.WorkerConn: the handler starts on its own goroutine.
func (w *Worker) Assign(a jobs.Assignment) error {
	ctx, cancel := context.WithCancel(w.ctx)
	r := &run{a: a, cancel: cancel, at: time.Now()}
	w.mu.Lock()
	w.running[a.JobID] = r
	w.assigned = append(w.assigned, a)
	w.notifyLocked()
	w.mu.Unlock()
	w.wg.Go(func() { w.run(ctx, r) })
	return nil
}

func (w *Worker) run(ctx context.Context, r *run) {
	a := r.a
	progress := func(data string) error {
		return w.worker().Progress(w.ctx, a.JobID, a.Attempt, json.RawMessage(data))
	}
	res, err := w.cfg.Handler(ctx, a, progress)
	w.waitUnpaused()
	o := jobs.Outcome{Result: res}
	canceled := ctx.Err() != nil && w.ctx.Err() == nil
	switch {
	case canceled && err != nil:
		o = jobs.Outcome{Canceled: true, Error: err.Error()}
	case err != nil:
		o.Error = err.Error()
	}
	if w.ctx.Err() != nil {
		return // closing: the attempt is left to Detach
	}
	cerr := w.worker().Complete(context.Background(), a.JobID, a.Attempt, o)
	w.mu.Lock()
	if cur := w.running[a.JobID]; cur == r {
		delete(w.running, a.JobID)
	}
	w.dones = append(w.dones, Done{JobID: a.JobID, Attempt: a.Attempt, Outcome: o, Err: cerr,
		Canceled: canceled, Start: r.at, End: time.Now()})
	w.notifyLocked()
	w.mu.Unlock()
	r.cancel()
}

// Cancel implements jobs.WorkerConn.
func (w *Worker) Cancel(jobID string, attempt int, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancels = append(w.cancels, Cancel{jobID, attempt, reason, time.Now()})
	w.notifyLocked()
	if r := w.running[jobID]; r != nil && r.a.Attempt == attempt && !w.cfg.IgnoreCancel {
		r.cancel()
	}
}

// Fenced implements jobs.WorkerConn: the attempt no longer counts; its
// slot is free (the handler may still be running).
func (w *Worker) Fenced(jobID string, attempt int, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fenced = append(w.fenced, Cancel{jobID, attempt, reason, time.Now()})
	w.notifyLocked()
	if r := w.running[jobID]; r != nil && r.a.Attempt == attempt {
		delete(w.running, jobID)
	}
}

func (w *Worker) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// scheduleLocked sets the next heartbeat, if the worker heartbeats and is
// not closed. w.mu is held.
func (w *Worker) scheduleLocked() {
	if w.cfg.Heartbeat <= 0 || w.closed {
		return
	}
	c := w.cfg.Clock
	if c == nil {
		c = realClock{}
	}
	w.beat = c.AfterFunc(w.cfg.Heartbeat, w.heartbeat)
}

// heartbeat renews the leases of the running attempts, unless the worker
// is paused (a stopped process misses its ticks), and sets the next one.
func (w *Worker) heartbeat() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.wg.Add(1)
	defer w.wg.Done()
	paused := w.paused != nil
	m := make(map[string]int, len(w.running))
	for id, r := range w.running {
		m[id] = r.a.Attempt
	}
	w.mu.Unlock()
	if !paused {
		w.worker().Heartbeat(w.ctx, m)
	}
	w.mu.Lock()
	w.scheduleLocked()
	w.mu.Unlock()
}

// realClock is jobs' default clock, for heartbeats without a Clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) jobs.Timer { return time.AfterFunc(d, f) }

// Pause stops heartbeats and completions, as SIGSTOP does to a process:
// the heartbeats due while paused are skipped.
func (w *Worker) Pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused == nil {
		w.paused = make(chan struct{})
	}
}

// Resume undoes Pause.
func (w *Worker) Resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused != nil {
		close(w.paused)
		w.paused = nil
	}
}

func (w *Worker) waitUnpaused() {
	w.mu.Lock()
	p := w.paused
	w.mu.Unlock()
	if p != nil {
		select {
		case <-p:
		case <-w.ctx.Done():
		}
	}
}

// Dones returns the attempts that ended so far.
func (w *Worker) Dones() []Done {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Done(nil), w.dones...)
}

// Cancels returns the cancel pushes received so far.
func (w *Worker) Cancels() []Cancel {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Cancel(nil), w.cancels...)
}

// Fences returns the fenced pushes received so far.
func (w *Worker) Fences() []Cancel {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Cancel(nil), w.fenced...)
}

// Assigned returns the assignments received so far.
func (w *Worker) Assigned() []jobs.Assignment {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]jobs.Assignment(nil), w.assigned...)
}

// Running returns the number of attempts the worker holds.
func (w *Worker) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// WaitFor waits until cond holds (checked on every recorded event) or d
// passes; it reports whether cond held.
func (w *Worker) WaitFor(d time.Duration, cond func(w *Worker) bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		if cond(w) {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond(w)
		}
	}
}

// Close detaches the worker (departed: its attempts fail at once, as when
// a worker process dies) and waits for its goroutines. Handlers must
// return once their context is cancelled.
func (w *Worker) Close(departed bool) {
	w.mu.Lock()
	w.closed = true
	if w.beat != nil {
		w.beat.Stop()
	}
	w.mu.Unlock()
	w.cancel()
	w.Resume()
	w.worker().Detach(departed)
	w.wg.Wait()
}

// ErrBoom is a handler error for tests.
var ErrBoom = errors.New("boom")
