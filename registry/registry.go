package registry

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/latch"
)

// Errors of the Registry.
var (
	// ErrAdmitTimeout: the previous connection with the same session key
	// did not finish its cleanup within Config.AdmitTimeout.
	ErrAdmitTimeout = errors.New("tether: previous connection of the session still ending")
	// ErrRegistryClosed: the Registry is shutting down and admits no one.
	ErrRegistryClosed = errors.New("tether: registry is shutting down")
	// ErrNoConnection: no live connection has that id.
	ErrNoConnection = errors.New("tether: no such connection")
)

// Config configures a Registry. The zero value is valid.
type Config struct {
	// Logger receives a line per connection end (Info) and per admission
	// (Debug). Nil means discard.
	Logger *slog.Logger
	// Registerer receives the connection metrics. Nil means they are kept
	// but not exported. Registering on a Registerer that already has them
	// (a second Registry in the same process) shares the existing series.
	Registerer prometheus.Registerer
	// OnConnect, if set, is called after a connection was admitted, before
	// Open returns, on Open's goroutine.
	OnConnect func(Info)
	// OnDisconnect, if set, is the application's cleanup. It runs
	// synchronously inside Handle.End, on the caller's goroutine, with no
	// registry lock held; a new connection with the same session key is
	// admitted only after it has returned. It may call any Registry method
	// except ones that wait for this connection (Shutdown).
	OnDisconnect func(Info, conn.Reason)
	// AdmitTimeout bounds how long Open waits for the previous connection
	// with the same session key to end and finish its cleanup. Zero means
	// 5s; negative is an error.
	AdmitTimeout time.Duration
	// Now is the clock for Started, LastActivity and Age. Nil means
	// time.Now. Waits (AdmitTimeout, Shutdown) use real timers.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.AdmitTimeout < 0 {
		return errors.New("tether: Config.AdmitTimeout must not be negative")
	}
	if c.AdmitTimeout == 0 {
		c.AdmitTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Registry is the lifecycle layer every transport shares (long-poll, SSE,
// WebSocket, TCP): it admits connections, in session order, gives each an
// id, a State and exactly one end Reason, reports ends to the hooks, the
// log and the metrics, lists the live set, ends one on request (Close),
// and shuts them all down (Shutdown).
//
// A transport calls Open when a connection starts, passing a Peer through
// which the Registry can act on it; Count and SetChannels while it runs;
// and End, once, when it is over, whatever ended it (its own detection, or
// a Peer.Close the Registry asked for).
//
// # Concurrency
//
// All methods are safe for concurrent use. The Registry starts no
// goroutine: Open and Shutdown wait on their caller's goroutine, hooks run
// on the goroutine of Open (OnConnect) and End (OnDisconnect).
//
// Lock order: Registry.mu and Handle.mu are never held together, and
// neither is held while a Peer method, a hook, the logger or a metric is
// called. Methods that act on many connections (List, Shutdown) copy the
// handles under Registry.mu and work on the copy, never on the live map.
type Registry struct {
	cfg     Config
	metrics *regMetrics
	ends    endStats      // Ends: end counts for the admin view (stats.go)
	closing chan struct{} // closed by the first Shutdown

	mu       sync.Mutex
	closed   bool               // guarded by mu: Shutdown began; Open refuses
	conns    map[string]*Handle // guarded by mu: admitted, conn.End not yet completed
	sessions map[string]*Handle // guarded by mu: holder of each session key
}

// NewRegistry returns an empty Registry.
func New(cfg Config) (*Registry, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newRegMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Registry{
		cfg:      cfg,
		metrics:  m,
		closing:  make(chan struct{}),
		conns:    make(map[string]*Handle),
		sessions: make(map[string]*Handle),
	}, nil
}

// Handle is a transport's grip on its admitted connection. Its methods are
// safe for concurrent use.
type Handle struct {
	r       *Registry
	id      string
	oi      OpenInfo
	peer    Peer
	started time.Time

	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	last     atomic.Int64 // LastActivity, Unix nanoseconds

	mu       sync.Mutex
	state    State    // guarded by mu
	channels []string // guarded by mu
	// connected fires when OnConnect has returned, done when End has
	// completed; each makes its channel only for a waiter (most
	// connections end with nobody waiting on either). Guarded by mu.
	connected latch.Latch
	done      latch.Latch
}

// Open admits a connection. With a session key it first waits (bounded by
// AdmitTimeout and ctx) until the previous connection with that key has
// ended and its OnDisconnect returned: application state is never torn
// down after its successor started. Several waiters for one key are
// admitted one at a time, each after its predecessor ended. Errors:
// ErrAdmitTimeout, ErrRegistryClosed, ctx's error.
func (r *Registry) Open(ctx context.Context, oi OpenInfo, p Peer) (*Handle, error) {
	if p == nil {
		return nil, errors.New("tether: Registry.Open needs a Peer")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := &Handle{r: r, id: newID(), oi: oi, peer: p, state: StateOpen}
	if err := r.admit(ctx, h); err != nil {
		return nil, err
	}
	r.metrics.open.WithLabelValues(string(oi.Transport)).Inc()
	func() {
		defer h.fire(&h.connected) // even if OnConnect panics, conn.End must not hang
		if r.cfg.OnConnect != nil {
			r.cfg.OnConnect(h.Info())
		}
	}()
	r.cfg.Logger.Debug("connection opened", "id", h.id, "transport", oi.Transport,
		"remote", oi.Remote, "sub", oi.Sub, "session", oi.SessionKey)
	return h, nil
}

// admit waits for h's session key to be free, then registers h.
func (r *Registry) admit(ctx context.Context, h *Handle) error {
	var timer *time.Timer
	for {
		prev, err := r.tryAdmit(h, r.cfg.Now())
		if err != nil || prev == nil {
			return err
		}
		if timer == nil {
			timer = time.NewTimer(r.cfg.AdmitTimeout)
			defer timer.Stop()
		}
		select {
		case <-prev.Done(): // its key is released; try again
		case <-timer.C:
			return ErrAdmitTimeout
		case <-r.closing:
			return ErrRegistryClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryAdmit registers h, started now, or returns the connection holding its
// session key.
func (r *Registry) tryAdmit(h *Handle, now time.Time) (holder *Handle, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrRegistryClosed
	}
	if key := h.sessionKey(); key != "" {
		if prev := r.sessions[key]; prev != nil {
			return prev, nil
		}
		r.sessions[key] = h
	}
	h.started = now // written once, before h is published under mu
	h.last.Store(now.UnixNano())
	r.conns[h.id] = h
	return nil, nil
}

// newID returns a random connection id: 16 hex digits, unique in practice
// across restarts, so logs of two runs are not confused.
func newID() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
	return hex.EncodeToString(b[:])
}

// sessionKey is the key of the connection's session in Registry.sessions:
// the client's key, within its user's own space.
func (h *Handle) sessionKey() string {
	if h.oi.SessionKey == "" {
		return ""
	}
	return h.oi.Sub + "\x00" + h.oi.SessionKey
}

// ID returns the connection's id.
func (h *Handle) ID() string { return h.id }

// Count adds application bytes received (in) and sent (out), and moves
// LastActivity to now when either is positive. It uses atomics only, so
// transports call it per frame.
func (h *Handle) Count(in, out int) {
	if in > 0 {
		h.bytesIn.Add(int64(in))
	}
	if out > 0 {
		h.bytesOut.Add(int64(out))
	}
	if in > 0 || out > 0 {
		h.last.Store(h.r.cfg.Now().UnixNano())
	}
}

// SetChannels replaces the channels the connection is subscribed to, as
// listed in its Info. The Handle keeps a copy.
func (h *Handle) SetChannels(channels []string) {
	c := slices.Clone(channels)
	h.mu.Lock()
	h.channels = c
	h.mu.Unlock()
}

// Done returns a channel closed when End has completed: OnDisconnect
// returned and the connection left the Registry.
func (h *Handle) Done() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.done.Wait()
}

// fire fires l, one of h's latches.
func (h *Handle) fire(l *latch.Latch) {
	h.mu.Lock()
	l.Fire()
	h.mu.Unlock()
}

// Info describes the connection now.
func (h *Handle) Info() Info {
	now := h.r.cfg.Now()
	h.mu.Lock()
	state, channels := h.state, slices.Clone(h.channels)
	h.mu.Unlock()
	if channels == nil {
		channels = []string{}
	}
	return Info{
		ID: h.id, Transport: h.oi.Transport, Remote: h.oi.Remote, Sub: h.oi.Sub,
		SessionKey: h.oi.SessionKey, State: state, Channels: channels,
		Started: h.started, Age: now.Sub(h.started),
		BytesIn: h.bytesIn.Load(), BytesOut: h.bytesOut.Load(),
		LastActivity: time.Unix(0, h.last.Load()),
	}
}

// End records the connection's one end reason (the first call wins; later
// and concurrent calls return at once, see Done), runs OnDisconnect, logs,
// counts, removes the connection from the Registry and only then releases
// its session key. noticed is the time from the first sign of the end to
// the decision, zero if not applicable. End must not be called from
// OnConnect's goroutine before Open returned: it waits for OnConnect, so
// that hooks run in order.
func (h *Handle) End(reason conn.Reason, noticed time.Duration) {
	h.mu.Lock()
	if h.state != StateOpen {
		h.mu.Unlock()
		return
	}
	h.state = StateClosing
	h.mu.Unlock()

	h.mu.Lock()
	connected := h.connected.Wait()
	h.mu.Unlock()
	<-connected
	info := h.Info()
	// The rest runs even if OnDisconnect panics, so that the Registry stays
	// consistent for a caller that recovers.
	defer h.release(info, reason, noticed)
	if cb := h.r.cfg.OnDisconnect; cb != nil {
		cb(info, reason)
	}
}

// release logs and counts the end, removes h from the Registry and frees
// its session key in the same critical section, then marks it closed.
func (h *Handle) release(info Info, reason conn.Reason, noticed time.Duration) {
	r := h.r
	r.metrics.ended(info.Transport, reason, noticed)
	r.ends.add(info.Transport, reason, r.cfg.Now())
	// A long-poll that got its answer is the ordinary case, thousands a
	// second: Debug. Every other end is what an operator asks about.
	level := slog.LevelInfo
	if reason == conn.ReasonCompleted {
		level = slog.LevelDebug
	}
	r.cfg.Logger.Log(context.Background(), level, "connection ended", "id", info.ID, "transport", info.Transport,
		"remote", info.Remote, "sub", info.Sub, "reason", reason, "noticed", noticed, "age", info.Age,
		"bytes_in", info.BytesIn, "bytes_out", info.BytesOut)
	r.mu.Lock()
	delete(r.conns, h.id)
	if key := h.sessionKey(); key != "" && r.sessions[key] == h {
		delete(r.sessions, key)
	}
	r.mu.Unlock()
	h.mu.Lock()
	h.state = StateClosed
	h.done.Fire()
	h.mu.Unlock()
}

// Get describes connection id, if it is live (open or closing).
func (r *Registry) Get(id string) (Info, bool) {
	h := r.handle(id)
	if h == nil {
		return Info{}, false
	}
	return h.Info(), true
}

func (r *Registry) handle(id string) *Handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[id]
}

// List describes every live connection, oldest first. It is a snapshot:
// connections may end or arrive while it is read.
func (r *Registry) List() []Info {
	hs := r.snapshot()
	infos := make([]Info, len(hs))
	for i, h := range hs {
		infos[i] = h.Info()
	}
	return infos
}

// snapshot copies the live handles, oldest first (ties by id).
func (r *Registry) snapshot() []*Handle {
	r.mu.Lock()
	hs := make([]*Handle, 0, len(r.conns))
	for _, h := range r.conns {
		hs = append(hs, h)
	}
	r.mu.Unlock()
	slices.SortFunc(hs, func(a, b *Handle) int {
		if c := a.started.Compare(b.started); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return hs
}

// Close ends connection id with mode and ReasonKicked: it calls the
// connection's Peer.Close, which returns once the transport acted on the
// socket; the transport then calls End. Errors: ErrNoConnection,
// ErrBadCloseMode, or the Peer's.
func (r *Registry) Close(id string, mode conn.CloseMode) error {
	if !validMode(mode) {
		return fmt.Errorf("%w %q", conn.ErrBadCloseMode, mode)
	}
	h := r.handle(id)
	if h == nil {
		return ErrNoConnection
	}
	return h.peer.Close(mode, conn.ReasonKicked)
}

func validMode(m conn.CloseMode) bool {
	return m == conn.CloseGraceful || m == conn.CloseReset || m == conn.CloseDiscard
}
