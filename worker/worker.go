package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tether-run/tether/client"
	"github.com/tether-run/tether/wire"
)

// Config configures a Worker. URL is required; every other field's zero
// value picks the default its doc names.
type Config struct {
	// URL is the tether server to take jobs from: ws://host:port (the path
	// defaults to /v1/ws; wss:// for TLS) for WebSocket, or tcp://host:port
	// (or a bare host:port) for the TCP transport. Required.
	URL string
	// Token is the worker's token (a JWT whose tether.worker lists the
	// types it runs), for a server with access control. Empty: none.
	Token string
	// TokenSource, when set, replaces Token: asked at each connection,
	// and before the token expires for a fresh one, sent as a refresh, so
	// that a long-running worker keeps its connection.
	TokenSource client.TokenSource
	// ID names this worker in the server's logs and in each job's
	// "worker" field. Empty means hostname-pid.
	ID string
	// Concurrency is how many jobs run at once. Zero means 1.
	Concurrency int
	// HeartbeatInterval is how often the worker renews the leases of its
	// running jobs (one job.heartbeat frame for all of them). Use the
	// server's job heartbeat interval or less. Zero means 1s.
	HeartbeatInterval time.Duration
	// ShutdownGrace is how long running handlers may go on after a
	// shutdown began; what still runs then is handed back to the server
	// (job.release), which queues it again at once. Zero means 10s;
	// negative means hand back at once.
	ShutdownGrace time.Duration
	// Logger receives the worker's messages. Nil means discard.
	Logger *slog.Logger
}

// Defaults, applied in New.
const (
	DefaultHeartbeatInterval = time.Second
	DefaultShutdownGrace     = 10 * time.Second
)

// Handler runs one attempt of a job. ctx ends when the job is cancelled
// (context.Cause is ErrCanceled), when its attempt was fenced (ErrFenced),
// at its deadline, when the worker hands it back at shutdown
// (ErrReleased), or when the connection to the server is lost
// (ErrConnectionLost). The result is marshalled to JSON and recorded as
// the job's result; a non-nil error fails the attempt (the server retries
// it up to the job's max_attempts).
type Handler func(ctx context.Context, job *Job) (result any, err error)

var (
	// ErrFenced: the server refused a report of an attempt that is no
	// longer current (its lease ended and the job moved on, or it was
	// cancelled past its grace). The attempt's outcome is dropped.
	ErrFenced = errors.New("tether: attempt fenced")
	// ErrCanceled is the cause of a handler's ctx when the job was
	// cancelled (POST /v1/jobs/{id}/cancel, or its client left).
	ErrCanceled = errors.New("tether: job canceled")
	// ErrReleased is the cause of a handler's ctx when a shutdown handed
	// the job back to the server.
	ErrReleased = errors.New("tether: job released at shutdown")
	// ErrConnectionLost is the cause of a handler's ctx when the
	// connection to the server ended without a shutdown notice: the server
	// retries such attempts elsewhere at once, so this one stops.
	ErrConnectionLost = errors.New("tether: connection to the server lost")
	// ErrNotConnected: the connection to the server was lost while
	// Progress waited for its answer, or the worker stopped.
	ErrNotConnected = errors.New("tether: worker not connected")
)

// Worker takes jobs of the types it has handlers for from one tether
// server and runs them. See the package doc for its goroutines.
type Worker struct {
	cfg Config
	log *slog.Logger

	stopReq  chan struct{} // closed by Shutdown or when Run's ctx ends
	stopOnce sync.Once
	hard     chan struct{} // closed when Shutdown's ctx ends: hand back at once
	hardOnce sync.Once
	dead     chan struct{} // closed when Run returns: reporters give up
	runDone  chan struct{} // closed when Run returns

	mu       sync.Mutex
	handlers map[string]Handler // guarded by mu
	started  bool               // guarded by mu
	running  map[runKey]*run    // guarded by mu; attempts whose outcome is not yet recorded
	idle     chan struct{}      // guarded by mu; closed when running becomes empty
	link     *link              // guarded by mu; the current connection, nil while there is none
	linkUp   chan struct{}      // guarded by mu; closed (and replaced) when a link comes up
	draining bool               // guarded by mu; a shutdown began: take no more jobs
}

type runKey struct {
	job     string
	attempt int
}

// run is one attempt being handled, or handled and not yet reported.
type run struct {
	job    *Job
	cancel context.CancelCauseFunc
	// guarded by Worker.mu:
	canceled  bool // a job.cancel frame came
	fenced    bool // a job.fenced frame came: drop the outcome
	abandoned bool // released or connection lost: drop the outcome
}

// New validates cfg and applies its defaults.
func New(cfg Config) (*Worker, error) {
	if cfg.URL == "" {
		return nil, errors.New("tether: worker: Config.URL is required")
	}
	if cfg.Concurrency < 0 || cfg.HeartbeatInterval < 0 {
		return nil, errors.New("tether: worker: negative Concurrency or HeartbeatInterval")
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	idle := make(chan struct{})
	close(idle)
	return &Worker{
		cfg: cfg, log: cfg.Logger.With("worker", cfg.ID),
		stopReq: make(chan struct{}), hard: make(chan struct{}), dead: make(chan struct{}), runDone: make(chan struct{}),
		handlers: map[string]Handler{}, running: map[runKey]*run{}, idle: idle, linkUp: make(chan struct{}),
	}, nil
}

// Handle registers h for jobs of jobType. Call it before Run: the types are
// announced when Run connects. A second handler for a type replaces the
// first.
func (w *Worker) Handle(jobType string, h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers[jobType] = h
}

// Run connects to the server, announces the worker and takes jobs until
// ctx ends or Shutdown is called; it reconnects with backoff (or after the
// server's shutdown hint) whenever the connection ends. When it stops it
// drains: tells the server to assign nothing more, gives running handlers
// ShutdownGrace, hands back what still runs, and returns nil. It returns
// an error only for a bad setup: no handlers, Run called twice, or a
// server that refuses workers.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("tether: worker: Run called twice")
	}
	w.started = true
	types := make([]string, 0, len(w.handlers))
	for t := range w.handlers {
		types = append(types, t)
	}
	w.mu.Unlock()
	defer close(w.runDone)
	defer close(w.dead)
	if len(types) == 0 {
		return errors.New("tether: worker: no handlers registered")
	}
	slices.Sort(types)
	stopCtx := context.AfterFunc(ctx, func() { w.stopOnce.Do(func() { close(w.stopReq) }) })
	defer stopCtx()

	for failures := 0; ; {
		l, err := w.connect(types)
		if err != nil {
			var se *ServerError
			if errors.As(err, &se) && (se.Code == string(wire.CodeBadRequest) || se.Code == string(wire.CodeUnknownType)) {
				return fmt.Errorf("tether: worker: the server refused this worker: %w", err)
			}
			w.log.Warn("connect failed", "url", w.cfg.URL, "err", err)
			if !w.pause(backoff(failures)) {
				w.shutdown(nil)
				return nil
			}
			failures++
			continue
		}
		failures = 0
		w.log.Info("connected", "url", w.cfg.URL, "types", types, "concurrency", w.cfg.Concurrency)
		hbDone := make(chan struct{})
		go func() { defer close(hbDone); w.heartbeatLoop(l) }()
		select {
		case <-l.done():
		case <-w.stopReq:
			w.shutdown(l)
			<-hbDone
			return nil
		}
		<-hbDone
		delay := backoff(0)
		hint, notified := l.hint()
		if notified {
			delay = hint
			w.log.Info("server shutting down; reconnecting", "after", delay)
		} else {
			w.log.Warn("connection lost; reconnecting", "err", l.err())
		}
		w.linkLost(l, notified)
		if !w.pause(delay) {
			w.shutdown(nil)
			return nil
		}
	}
}

// Shutdown stops Run gracefully (drain, ShutdownGrace, hand back) and
// waits for it to return. When ctx ends first, what still runs is handed
// back at once, and Shutdown returns ctx.Err().
func (w *Worker) Shutdown(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stopReq) })
	stop := context.AfterFunc(ctx, func() { w.hardOnce.Do(func() { close(w.hard) }) })
	defer stop()
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-w.runDone:
		return nil
	case <-ctx.Done():
		<-w.runDone // hard: Run hands back at once and returns
		return ctx.Err()
	}
}

// pause waits d, reporting false when the worker is to stop instead.
func (w *Worker) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stopReq:
		return false
	}
}

// backoff is the wait before reconnect attempt n+1: 100ms doubling to 5s,
// with jitter, so that workers restarted together do not reconnect in step.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n, 6)
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// connect dials, announces the worker, and makes the link current. Frames
// of running attempts then go out on it: the heartbeat loop re-announces
// them first thing.
func (w *Worker) connect(types []string) (*link, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		select {
		case <-w.stopReq:
			cancel()
		case <-ctx.Done():
		}
	}()
	l, err := dialLink(ctx, w.cfg.URL, w.cfg.Token, w.cfg.TokenSource, w.silence(), w.handleFrame)
	if err != nil {
		return nil, err
	}
	err = l.request(ctx, wire.WorkerRequest{
		Type: wire.TypeWorker, Worker: w.cfg.ID, Types: types, Concurrency: w.cfg.Concurrency,
	})
	if err != nil {
		l.shut()
		return nil, err
	}
	w.mu.Lock()
	w.link = l
	close(w.linkUp)
	w.linkUp = make(chan struct{})
	w.mu.Unlock()
	return l, nil
}

// linkLost forgets l. After a server's shutdown notice the server keeps
// the running attempts' leases, so they go on and are re-announced on the
// next connection; after any other loss the server retries them elsewhere
// at once, so they are stopped here (ErrConnectionLost) and their outcome
// dropped, keeping two attempts of a job from running at the same time.
func (w *Worker) linkLost(l *link, notified bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.link == l {
		w.link = nil
	}
	if notified {
		return
	}
	for k, r := range w.running {
		r.abandoned = true
		r.cancel(ErrConnectionLost)
		w.forgetLocked(k)
	}
}

func (w *Worker) liveLinkLocked() *link {
	if w.link == nil {
		return nil
	}
	select {
	case <-w.link.done():
		return nil
	default:
		return w.link
	}
}

// waitLink returns the live link, waiting for one; nil once Run has
// returned or ctx ended.
func (w *Worker) waitLink(ctx context.Context) *link {
	for {
		w.mu.Lock()
		l, up := w.liveLinkLocked(), w.linkUp
		w.mu.Unlock()
		if l != nil {
			return l
		}
		select {
		case <-up:
		case <-w.dead:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// silence is how long the server may send nothing before the
// connection is taken for dead (the link closes itself then): five
// heartbeat intervals, and at least the 10 s the server holds its own
// peers to. The heartbeats' answers alone keep it from firing on a live
// server.
func (w *Worker) silence() time.Duration {
	return max(5*w.cfg.HeartbeatInterval, client.DefaultHeartbeatTimeout)
}

// heartbeatLoop renews the leases of the running attempts on l every
// HeartbeatInterval, starting at once (which re-announces them after a
// reconnect), until l ends.
func (w *Worker) heartbeatLoop(l *link) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		w.heartbeat(l)
		select {
		case <-l.done():
			return
		case <-t.C:
		}
	}
}

// heartbeat sends one job.heartbeat naming every attempt whose outcome is
// not yet recorded, none included: an empty one tells the server the
// worker is alive (after one of its leases ran out, it assigns nothing new
// until then), and its answer keeps the server's silence noticeable. It
// does not wait for the answer: a refused attempt comes back as a
// job.fenced frame.
func (w *Worker) heartbeat(l *link) {
	w.mu.Lock()
	jobs := make(map[string]int, len(w.running))
	for k, r := range w.running {
		if !r.fenced && !r.abandoned {
			jobs[k.job] = k.attempt
		}
	}
	w.mu.Unlock()
	l.send(context.Background(), wire.WorkerRequest{ID: heartbeatID, Type: wire.TypeJobHeartbeat, Jobs: jobs})
}

// heartbeatID is the id of every job.heartbeat: their answers are not
// waited for, only an error frame with it is logged.
const heartbeatID = "hb"

// handleFrame serves a server frame that is not an answer to a request.
// It runs on l's reader goroutine and never blocks on the network.
func (w *Worker) handleFrame(l *link, frame any) {
	switch f := frame.(type) {
	case wire.JobFrame:
		w.start(l, f)
	case wire.JobSignal:
		w.signal(f)
	case wire.Shutdown:
		// The link answers it with bye and closes; Run reconnects after
		// the hint.
		w.log.Info("server shutting down", "reconnect_after_ms", f.ReconnectAfterMS)
	case wire.ErrorFrame:
		if f.ID == "" || f.ID == heartbeatID {
			w.log.Warn("server error", "code", f.Code, "message", f.Message)
		}
	}
}

// signal serves a job.cancel or job.fenced frame.
func (w *Worker) signal(f wire.JobSignal) {
	switch f.Type {
	case wire.TypeJobCancel:
		w.mu.Lock()
		if r := w.running[runKey{f.Job, f.Attempt}]; r != nil && !r.canceled {
			r.canceled = true
			r.cancel(ErrCanceled)
		}
		w.mu.Unlock()
	case wire.TypeJobFenced:
		w.mu.Lock()
		k := runKey{f.Job, f.Attempt}
		if r := w.running[k]; r != nil {
			r.fenced = true
			r.cancel(ErrFenced)
			w.forgetLocked(k) // the slot is free: the server assigns the next job
		}
		w.mu.Unlock()
		w.log.Info("attempt fenced", "job", f.Job, "attempt", f.Attempt, "reason", f.Reason)
	}
}

// forgetLocked removes an attempt whose outcome is settled.
func (w *Worker) forgetLocked(k runKey) {
	delete(w.running, k)
	if len(w.running) == 0 {
		select {
		case <-w.idle:
		default:
			close(w.idle)
		}
	}
}

// shutdown drains: no more jobs, ShutdownGrace for the running ones (cut
// short when Shutdown's ctx ends), then hands back the rest at once. l is
// the live link, or nil.
func (w *Worker) shutdown(l *link) {
	w.mu.Lock()
	w.draining = true
	idle := w.idle
	n := len(w.running)
	w.mu.Unlock()
	w.log.Info("shutting down", "running", n, "grace", max(w.cfg.ShutdownGrace, 0))
	if l != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := l.request(ctx, wire.WorkerRequest{Type: wire.TypeDrain}); err != nil {
			w.log.Warn("drain", "err", err)
		}
		cancel()
	}
	if w.cfg.ShutdownGrace > 0 {
		t := time.NewTimer(w.cfg.ShutdownGrace)
		select {
		case <-idle:
		case <-t.C:
		case <-w.hard:
		}
		t.Stop()
	}
	w.mu.Lock()
	var rest []runKey
	for k, r := range w.running {
		r.abandoned = true
		r.cancel(ErrReleased)
		w.forgetLocked(k)
		rest = append(rest, k)
	}
	w.mu.Unlock()
	if l != nil {
		var wg sync.WaitGroup
		for _, k := range rest {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				err := l.request(ctx, wire.WorkerRequest{Type: wire.TypeJobRelease, Job: k.job, Attempt: k.attempt})
				if err != nil && !errors.Is(err, ErrFenced) {
					w.log.Warn("release", "job", k.job, "attempt", k.attempt, "err", err)
				}
			})
		}
		wg.Wait()
		l.bye()
	}
	if len(rest) > 0 {
		w.log.Info("handed back", "jobs", len(rest))
	}
	w.mu.Lock()
	w.link = nil
	w.mu.Unlock()
}

// start runs a job frame's attempt on its own goroutine.
func (w *Worker) start(l *link, f wire.JobFrame) {
	k := runKey{f.Job, f.Attempt}
	w.mu.Lock()
	if w.running[k] != nil {
		w.mu.Unlock()
		return // a repeat (after a reconnect): it runs already
	}
	if w.draining {
		w.mu.Unlock()
		go l.request(context.Background(), wire.WorkerRequest{Type: wire.TypeJobRelease, Job: f.Job, Attempt: f.Attempt})
		return
	}
	h := w.handlers[f.JobType]
	ctx, cancel := context.WithCancelCause(context.Background())
	job := &Job{
		ID: f.Job, Type: f.JobType, Payload: f.Payload, Attempt: f.Attempt,
		Deadline: f.Deadline, Channel: f.Channel, w: w,
	}
	r := &run{job: job, cancel: cancel}
	if len(w.running) == 0 {
		w.idle = make(chan struct{})
	}
	w.running[k] = r
	w.mu.Unlock()
	go w.execute(ctx, r, h)
}

// execute calls the handler and reports its outcome, unless the attempt
// was fenced or abandoned meanwhile.
func (w *Worker) execute(ctx context.Context, r *run, h Handler) {
	k := runKey{r.job.ID, r.job.Attempt}
	if !r.job.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, r.job.Deadline)
		defer cancel()
	}
	var res any
	var err error
	if h == nil {
		err = fmt.Errorf("no handler for job type %q", r.job.Type)
	} else {
		res, err = call(ctx, h, r.job)
	}
	w.mu.Lock()
	drop := r.fenced || r.abandoned || w.running[k] != r
	canceled := r.canceled
	w.mu.Unlock()
	r.cancel(nil)
	if drop {
		return
	}
	w.report(r, outcome(r.job, res, err, canceled))
}

// call runs h, turning a panic into an error.
func call(ctx context.Context, h Handler, job *Job) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, job)
}

// report sends the attempt's job.done until the server records or refuses
// it, over whichever connection is live (it waits for one).
func (w *Worker) report(r *run, done wire.WorkerRequest) {
	k := runKey{r.job.ID, r.job.Attempt}
	for try := 0; ; try++ {
		l := w.waitLink(context.Background())
		w.mu.Lock()
		current := w.running[k] == r
		w.mu.Unlock()
		if l == nil || !current {
			return // Run returned, or the attempt was fenced or abandoned
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.request(ctx, done) // a copy: each try gets its own id
		cancel()
		var se *ServerError
		switch {
		case err == nil, errors.Is(err, ErrFenced):
			if err != nil {
				w.log.Info("outcome refused: attempt fenced", "job", k.job, "attempt", k.attempt)
			}
			w.mu.Lock()
			if w.running[k] == r {
				w.forgetLocked(k)
			}
			w.mu.Unlock()
			return
		case errors.As(err, &se) && !wire.Code(se.Code).Retryable():
			w.log.Error("outcome refused", "job", k.job, "attempt", k.attempt, "err", err)
			w.mu.Lock()
			if w.running[k] == r {
				w.forgetLocked(k)
			}
			w.mu.Unlock()
			return
		case errors.Is(err, errLinkDown):
			// waitLink finds the next connection
		default:
			w.log.Warn("report failed; retrying", "job", k.job, "attempt", k.attempt, "err", err)
			select {
			case <-time.After(backoff(try)):
			case <-w.dead:
				return
			}
		}
	}
}

func errText(err error) string {
	if s := strings.TrimSpace(err.Error()); s != "" {
		return s
	}
	return "error"
}
