package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
)

// Config holds the API's settings; its dependencies are arguments of New.
// The zero value is valid.
type Config struct {
	// DefaultWait is how long a long-poll waits when the request gives no
	// wait. Zero means the constant DefaultWait (25s).
	DefaultWait time.Duration
	// MaxWait is the longest wait a request may ask for. Zero means
	// DefaultMaxWait (2m).
	MaxWait time.Duration
	// DefaultLimit is how many messages one read returns when the request
	// gives no limit. Zero means DefaultReadLimit (100).
	DefaultLimit int
	// MaxLimit is the largest limit a request may ask for. Zero means
	// DefaultMaxLimit (1000).
	MaxLimit int
	// MaxBodyBytes bounds a published message. Zero means
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// SSEHeartbeat is how often an idle SSE stream gets a comment line.
	// Zero means DefaultSSEHeartbeat (15s).
	SSEHeartbeat time.Duration
	// SSERetry is the reconnection delay sent to EventSource clients.
	// Zero means DefaultSSERetry (2s).
	SSERetry time.Duration
	// ProbeWait bounds how long conn.Watch waits for a peer's answer to a
	// probe. Zero means conn's default.
	ProbeWait time.Duration
	// BodyGrace and BodyMinRate bound how slowly a request body may
	// arrive: it may take BodyGrace, plus a second for every BodyMinRate
	// bytes that arrived; a slower sender is cut with 408 body_timeout.
	// Zero means DefaultBodyGrace (10s) and DefaultBodyMinRate (16 KiB/s).
	BodyGrace   time.Duration
	BodyMinRate int
}

// Defaults of Config, applied in one place (setDefaults); flags and docs
// take them from here.
const (
	DefaultWait         = 25 * time.Second
	DefaultMaxWait      = 2 * time.Minute
	DefaultReadLimit    = 100
	DefaultMaxLimit     = 1000
	DefaultMaxBodyBytes = 1 << 20
	DefaultSSEHeartbeat = session.DefaultStreamHeartbeat
	DefaultSSERetry     = 2 * time.Second
	DefaultBodyGrace    = 10 * time.Second
	DefaultBodyMinRate  = 16 << 10
)

func (c *Config) setDefaults() error {
	setDefault(&c.DefaultWait, DefaultWait)
	setDefault(&c.MaxWait, DefaultMaxWait)
	setDefault(&c.DefaultLimit, DefaultReadLimit)
	setDefault(&c.MaxLimit, DefaultMaxLimit)
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.SSEHeartbeat, DefaultSSEHeartbeat)
	setDefault(&c.SSERetry, DefaultSSERetry)
	setDefault(&c.BodyGrace, DefaultBodyGrace)
	setDefault(&c.BodyMinRate, DefaultBodyMinRate)
	switch {
	case c.BodyGrace < 0 || c.BodyMinRate < 0:
		return errors.New("tether: httpapi: BodyGrace and BodyMinRate must not be negative")
	case c.DefaultWait < 0 || c.MaxWait < 0 || c.SSEHeartbeat < 0 || c.SSERetry < 0 || c.ProbeWait < 0:
		return errors.New("tether: httpapi: durations must not be negative")
	case c.DefaultWait > c.MaxWait:
		return errors.New("tether: httpapi: DefaultWait exceeds MaxWait")
	case c.DefaultLimit < 1 || c.MaxLimit < c.DefaultLimit:
		return errors.New("tether: httpapi: need 1 <= DefaultLimit <= MaxLimit")
	case c.MaxBodyBytes < 1:
		return errors.New("tether: httpapi: MaxBodyBytes must be positive")
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// API is tether's HTTP API v1 (docs/api.md) as an http.Handler. Serve it
// with a listener from conn.Listen and http.Server.ConnContext set to
// conn.ConnContext, so departures are told apart; on any other listener it
// still works, with less precise end reasons.
type API struct {
	store        store.Store
	log          *slog.Logger
	limits       limits
	maxBody      int64
	body         bodyLimits
	sseHeartbeat time.Duration
	sseRetry     time.Duration
	metrics      *metrics
	core         *session.Core
	reg          *registry.Registry
	jobs         *jobs.Service // nil: no jobs API
	handler      http.Handler
}

// New returns the API for cfg. Its long-polls and SSE streams are
// sessions of core (whose store, registry and logger it uses too); js,
// when not nil, serves the jobs API (/v1/jobs); mr, when not nil,
// receives the API's metrics.
func New(cfg Config, core *session.Core, js *jobs.Service, mr prometheus.Registerer) (*API, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if core == nil {
		return nil, errors.New("tether: httpapi: a session core is required")
	}
	a := &API{
		store:        core.Store(),
		log:          core.Logger(),
		maxBody:      cfg.MaxBodyBytes,
		body:         bodyLimits{grace: cfg.BodyGrace, rate: cfg.BodyMinRate},
		sseHeartbeat: cfg.SSEHeartbeat,
		sseRetry:     cfg.SSERetry,
		core:         core,
		reg:          core.Registry(),
		jobs:         js,
		limits: limits{
			defaultWait: cfg.DefaultWait, maxWait: cfg.MaxWait,
			defaultLimit: cfg.DefaultLimit, maxLimit: cfg.MaxLimit,
		},
	}
	m, err := newMetrics(mr)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	mux := http.NewServeMux()
	// A shutdown reaches long-polls and SSE streams through the Registry
	// (their sessions are its peers); publishes and job requests are not
	// ended by it: the server waits for them, so that what it acknowledges
	// is what it stored.
	watch := func(route string, h http.HandlerFunc) http.Handler {
		return withSlot(conn.Watch(h, conn.WatchConfig{
			ProbeWait: cfg.ProbeWait,
			OnEnd: func(r *http.Request, e conn.End) {
				if slot := slotFrom(r.Context()); slot != nil && slot.parked {
					return // parkPoll records it once it has answered
				}
				endTracked(r, e)
				a.endedAs(route, r.PathValue("channel"), r.RemoteAddr, r.Context(), e)
			},
		}))
	}
	mux.Handle("POST /v1/channels/{channel}/messages", watch("publish", a.guardPublish(a.publish)))
	mux.Handle("GET /v1/channels/{channel}/messages", watch("poll", a.poll))
	mux.Handle("GET /v1/channels/{channel}/events", watch("events", a.events))
	mux.HandleFunc("GET /v1/channels/{channel}/presence", a.presence)
	mux.HandleFunc("GET /healthz", a.healthz)
	admin := a.guardAdmin(ConnectionsHandler(a.reg))
	mux.Handle("/v1/connections", admin)
	mux.Handle("/v1/connections/", admin)
	paths := []string{"/v1/channels/{channel}/messages", "/v1/channels/{channel}/events", "/v1/channels/{channel}/presence", "/healthz"}
	if a.jobs != nil {
		// Job routes are not ended by a shutdown (a create must finish
		// storing); a create waiting for the outcome answers 202 once the
		// Registry's Shutdown begins.
		mux.Handle("POST /v1/jobs", watch("jobs.create", a.createJob))
		mux.Handle("GET /v1/jobs", watch("jobs.list", a.listJobs))
		mux.Handle("GET /v1/jobs/{id}", watch("jobs.get", a.getJob))
		mux.Handle("POST /v1/jobs/{id}/cancel", watch("jobs.cancel", a.cancelJob))
		paths = append(paths, "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/cancel")
	}
	for _, path := range paths {
		mux.HandleFunc(path, methodNotAllowed)
	}
	mux.HandleFunc("/", notFound)
	a.handler = CleanPaths(mux)
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// presence serves GET /v1/channels/{channel}/presence: who is subscribed
// to the channel on this node (WebSocket, TCP, SSE), oldest first. It
// needs the permission to read the channel.
func (a *API) presence(w http.ResponseWriter, r *http.Request) {
	p := a.authenticate(w, r)
	if p == nil {
		return
	}
	channel := r.PathValue("channel")
	if e := decodeChannel(channel); e != nil {
		writeError(w, e)
		return
	}
	if !a.authorize(w, r, p, session.Act{Op: session.OpSubscribe, Channel: channel}) {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Channel  string            `json:"channel"`
		Presence []session.Present `json:"presence"`
	}{channel, a.core.Presence(channel)})
}

// healthz answers 200 {"status":"ok"}, or, when the store reports a
// degraded Health (store.Healther; a full disk makes it read-only),
// 503 {"status":"degraded","read_only":true,"reason":"..."}: a load
// balancer should send writes elsewhere, while reads still work.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if h, ok := a.store.(store.Healther); ok {
		if st := h.Health(); st.Degraded {
			writeJSON(w, http.StatusServiceUnavailable, struct {
				Status   string `json:"status"`
				ReadOnly bool   `json:"read_only"`
				Reason   string `json:"reason"`
			}{"degraded", st.ReadOnly, st.Reason})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, errorf(http.StatusNotFound, CodeNotFound, "no route for "+r.Method+" "+r.URL.Path))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path))
}

// endedAs logs and counts how a watched request ended. Departures are logged
// at Info: they are what an operator asks about. Ordinary ends go to Debug.
func (a *API) endedAs(route, channel, remote string, ctx context.Context, e conn.End) {
	a.metrics.ended(route, e)
	level := slog.LevelDebug
	if e.Reason != conn.ReasonCompleted {
		level = slog.LevelInfo
	}
	if !a.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("route", route),
		slog.String("channel", channel),
		slog.String("remote", remote),
		slog.String("reason", string(e.Reason)),
		slog.Bool("half_closed", e.HalfClosed),
	}
	if e.Noticed > 0 {
		attrs = append(attrs, slog.Duration("noticed", e.Noticed))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	a.log.LogAttrs(context.WithoutCancel(ctx), level, "request ended", attrs...)
}
