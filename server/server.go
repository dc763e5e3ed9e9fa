// Package server assembles a tether node: the storage engine, the HTTP API
// on a listener that tells departures apart, metrics, and an orderly stop.
//
// Concurrency: Start, Addr and Stop may be called from any goroutine. Start
// starts one goroutine, the HTTP server's accept loop, owned by the Server
// and ended by Stop.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/httpapi"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
)

// Config configures a Server. The zero value serves on 127.0.0.1:8080 with
// its data in ./tether-data.
type Config struct {
	// Addr is the TCP address to listen on. Empty means 127.0.0.1:8080;
	// port 0 picks a free port (see Server.Addr).
	Addr string
	// DataDir holds the embedded engine's data. Empty means ./tether-data.
	// Unused when Store is set.
	DataDir string
	// Store, when set, is used instead of the embedded engine. The Server
	// does not close a Store it was given.
	Store store.Store
	// Retention bounds each channel's history in the embedded engine. The
	// zero value keeps everything.
	Retention store.Retention
	// DedupWindow is how long an Idempotency-Key is remembered. Zero means
	// 10 minutes.
	DedupWindow time.Duration
	// KeepAlive sets TCP keepalive and TCP_USER_TIMEOUT on accepted
	// connections: how fast a silent client is noticed. The zero value
	// notices one within 10 s (see conn.KeepAlive).
	KeepAlive conn.KeepAlive
	// HTTP tunes the API (waits, limits, body size, SSE heartbeat). Its
	// Store, Logger, Registerer and Shutdown are set by the Server.
	HTTP httpapi.Config
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registry receives metrics and is served at /metrics. Nil means a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
}

// Server is one tether node.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex // guards the fields below
	started  bool
	stopped  bool
	ln       net.Listener
	http     *http.Server
	store    store.Store
	ownStore bool
	stop     context.CancelCauseFunc
	serveErr chan error
}

// New checks cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "tether-data"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.Retention.MaxAge < 0 || cfg.Retention.MaxMessages < 0 || cfg.DedupWindow < 0 {
		return nil, errors.New("tether: retention and dedup window must not be negative")
	}
	return &Server{cfg: cfg, log: cfg.Logger}, nil
}

// Start opens the store, listens, and serves until Stop. It returns once the
// listener is open, so Addr is valid when it returns nil.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("tether: server already started")
	}
	st, own, err := s.openStore()
	if err != nil {
		return err
	}
	h, shutdown, err := s.handler(st)
	if err != nil {
		closeOwned(st, own)
		return err
	}
	ln, err := conn.Listen(ctx, s.cfg.Addr, s.cfg.KeepAlive)
	if err != nil {
		closeOwned(st, own)
		return fmt.Errorf("tether: listen: %w", err)
	}
	s.started, s.ln, s.store, s.ownStore, s.stop = true, ln, st, own, shutdown
	s.http = &http.Server{
		Handler:           h,
		ConnContext:       conn.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.http.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "data", s.dataDesc())
	return nil
}

func (s *Server) openStore() (store.Store, bool, error) {
	if s.cfg.Store != nil {
		return s.cfg.Store, false, nil
	}
	st, err := pebblestore.Open(pebblestore.Config{
		Dir:         s.cfg.DataDir,
		Retention:   s.cfg.Retention,
		DedupWindow: s.cfg.DedupWindow,
		Logger:      s.log,
	})
	if err != nil {
		return nil, false, fmt.Errorf("tether: open data dir %s: %w", s.cfg.DataDir, err)
	}
	return st, true, nil
}

// handler builds the routes: the API, /metrics, and the context whose
// cancellation tells every open request that the server is stopping.
func (s *Server) handler(st store.Store) (http.Handler, context.CancelCauseFunc, error) {
	shutdownCtx, shutdown := context.WithCancelCause(context.Background())
	hc := s.cfg.HTTP
	hc.Store, hc.Logger, hc.Registerer, hc.Shutdown = st, s.log, s.cfg.Registry, shutdownCtx
	api, err := httpapi.New(hc)
	if err != nil {
		shutdown(nil)
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/", api)
	return mux, shutdown, nil
}

func (s *Server) dataDesc() string {
	if s.cfg.Store != nil {
		return "(external store)"
	}
	if abs, err := filepath.Abs(s.cfg.DataDir); err == nil {
		return abs
	}
	return s.cfg.DataDir
}

// Addr is the address the server listens on, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stop stops the server gracefully: it stops accepting, answers every open
// long-poll with its keepalive and ends every SSE stream with a shutdown
// event, waits for requests in flight (publishes included, so nothing
// acknowledged is lost) until ctx ends, then closes what is left and the
// store. It returns ctx.Err() when the deadline won.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	s.log.Info("stopping")
	s.stop(conn.ErrShutdown)
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	if serr := <-s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		s.log.Error("serve", "err", serr)
	}
	if s.ownStore {
		if cerr := s.store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	s.log.Info("stopped", "err", err)
	return err
}

func closeOwned(st store.Store, own bool) {
	if own {
		st.Close()
	}
}
