package conn

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// WatchConfig configures Watch. The zero value is valid.
type WatchConfig struct {
	// Shutdown, when done, cancels every watched request's context with
	// ErrShutdown. http.Server.Shutdown waits for handlers but does not
	// cancel them, so long-polls need this to end. Nil means never.
	Shutdown context.Context
	// ProbeWait is the longest wait for the peer's answer to a probe
	// (an ACK: it is still reading; an RST: it is gone). The peer's kernel
	// answers within one round trip, plus up to 40 ms if it delays its
	// ACK, so this only matters for peers that stopped answering. Zero or
	// negative means 1 s.
	ProbeWait time.Duration
	// OnEnd, if set, is called once per request, on the handler's
	// goroutine, after the handler returned and Watch stopped watching.
	// r is the request the handler saw.
	OnEnd func(r *http.Request, e End)
}

// End describes how a watched request ended.
type End struct {
	// Reason is ReasonOf(Err), or ReasonHalfClosed or ReasonCompleted when
	// the handler's context was not cancelled.
	Reason Reason
	// Noticed is the time Watch took to classify Reason: from net/http's
	// cancellation of the request context (or from the poll that saw a
	// later change) to the decision. Zero for ReasonCompleted and
	// ReasonShutdown.
	Noticed time.Duration
	// HalfClosed is true if the peer was seen to half-close and keep
	// reading, whatever happened later.
	HalfClosed bool
	// Err is context.Cause of the handler's context, or nil.
	Err error
}

// Watch returns a handler that runs next with a request context that is
// cancelled only when the client is really gone, or on shutdown; see the
// package documentation.
func Watch(next http.Handler, cfg WatchConfig) http.Handler {
	if cfg.ProbeWait <= 0 {
		cfg.ProbeWait = time.Second
	}
	return &watchHandler{next: next, cfg: cfg}
}

type watchHandler struct {
	next http.Handler
	cfg  WatchConfig
}

func (h *watchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wt := newWatcher(&h.cfg, w, r)
	defer wt.finish()
	h.next.ServeHTTP(wt.handlerW, wt.req)
}

// watcher watches one request. Its goroutines: the one context.AfterFunc
// starts when net/http cancels r.Context() (runs run, and exits when it
// has classified the end or when the handler returns), and the one it
// starts when cfg.Shutdown is done (cancels and exits). finish stops both
// and waits for them, so nothing outlives the handler.
//
// responseWriter.mu and watcher.mu are never held together.
type watcher struct {
	cfg      *WatchConfig
	orig     context.Context // net/http's r.Context()
	ci       *connInfo       // nil: degraded to net/http's cancellation
	rw       *responseWriter // nil when degraded
	handlerW http.ResponseWriter
	req      *http.Request // what the handler sees
	cancel   context.CancelCauseFunc
	done     chan struct{}  // closed when the handler has returned
	kick     chan struct{}  // cap 1: the handler wrote; look again soon
	stops    [2]func() bool // of the AfterFuncs; nil if unused
	wg       sync.WaitGroup

	// Owned by the run goroutine.
	mark   marks       // when the peer's FIN was seen, or it last acked
	marked bool        // mark is set: the peer's FIN was seen
	timer  *time.Timer // for sleeps; nil until needed

	mu          sync.Mutex
	finished    bool          // guarded by mu: the handler returned; later ends don't count
	cause       error         // guarded by mu: the first cause we cancelled with
	noticed     time.Duration // guarded by mu
	halfClosed  bool          // guarded by mu
	halfNoticed time.Duration // guarded by mu
}

func newWatcher(cfg *WatchConfig, w http.ResponseWriter, r *http.Request) *watcher {
	wt := &watcher{cfg: cfg, orig: r.Context(), handlerW: w, done: make(chan struct{})}
	// WithoutCancel: net/http's cancellation, which also fires on a mere
	// half-close (golang/go#18527), reaches the handler only through run.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	wt.cancel = cancel
	wt.req = r.WithContext(ctx)
	if ci := connInfoFrom(r.Context()); ci != nil && r.ProtoMajor == 1 {
		// HTTP/2 multiplexes streams on one socket: its state says nothing
		// about one stream, and net/http already cancels on RST_STREAM.
		wt.ci = ci
		wt.kick = make(chan struct{}, 1)
		wt.rw = newResponseWriter(w, r, wt.kick)
		wt.rw.wt = wt
		wt.handlerW = wt.rw
	}
	wt.watch(r.Context(), wt.run)
	if cfg.Shutdown != nil {
		wt.watch(cfg.Shutdown, func() { wt.end(ErrShutdown, 0) })
	}
	return wt
}

// watch runs f on its own goroutine once ctx is done. No goroutine
// exists until then.
func (wt *watcher) watch(ctx context.Context, f func()) {
	wt.wg.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer wt.wg.Done()
		f()
	})
	if wt.stops[0] == nil {
		wt.stops[0] = stop
	} else {
		wt.stops[1] = stop
	}
}

// finish runs when the handler returns: no more probes, no more
// cancellations counted, goroutines stopped, then OnEnd.
func (wt *watcher) finish() {
	if wt.rw != nil {
		wt.rw.finish()
	}
	wt.mu.Lock()
	wt.finished = true
	wt.mu.Unlock()
	close(wt.done)
	for _, stop := range wt.stops {
		if stop != nil && stop() { // f will never run
			wt.wg.Done()
		}
	}
	wt.wg.Wait()
	if wt.cfg.OnEnd != nil {
		wt.cfg.OnEnd(wt.req, wt.endState())
	}
	wt.cancel(nil) // release the handler's context, as net/http does
}

// end cancels the handler's context with cause, unless the handler has
// returned or an earlier cause won.
func (wt *watcher) end(cause error, noticed time.Duration) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.finished || wt.cause != nil {
		return
	}
	wt.cause, wt.noticed = cause, noticed
	wt.cancel(cause)
}

func (wt *watcher) setHalfClosed(noticed time.Duration) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if !wt.halfClosed {
		wt.halfClosed, wt.halfNoticed = true, noticed
	}
}

func (wt *watcher) isHalfClosed() bool {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.halfClosed
}

func (wt *watcher) endState() End {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	e := End{Err: wt.cause, HalfClosed: wt.halfClosed}
	switch {
	case wt.cause != nil:
		e.Reason, e.Noticed = ReasonOf(wt.cause), wt.noticed
	case wt.halfClosed:
		e.Reason, e.Noticed = ReasonHalfClosed, wt.halfNoticed
	default:
		e.Reason = ReasonCompleted
	}
	return e
}
