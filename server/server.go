// Package server assembles a tether node: the storage engine, the HTTP API
// on a listener that tells departures apart, metrics, and an orderly stop.
//
// Concurrency: Start, Addr and Stop may be called from any goroutine. Start
// starts one goroutine, the HTTP server's accept loop, owned by the Server
// and ended by Stop.
package server

import (
	"cmp"
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
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/workerproto"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/natsstore"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
	"github.com/tether-run/tether/ws"
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
	// NATS, when its URLs are set (and Store is not), puts the channels on
	// a NATS JetStream cluster instead of the embedded engine: every node
	// pointed at the same cluster and stream serves the same channels. Its
	// Retention, DedupWindow and Logger are set by the Server.
	NATS natsstore.Config
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
	// Lifecycle carries the application's connection hooks (OnConnect,
	// OnDisconnect with the end reason) and the session admission bound.
	// Its Logger and Registerer are set by the Server.
	Lifecycle registry.Config
	// TCPAddr, when set, serves the framed protocol over plain TCP on this
	// address (docs/protocol.md). Empty means off.
	TCPAddr string
	// Protocol tunes the session core of every transport: frame size,
	// requests in flight, queue bytes, slow-consumer lag (SSE included),
	// heartbeats, idle timeout.
	Protocol session.Config
	// WSOriginPatterns are the hosts (path.Match patterns) whose browser
	// pages may open WebSockets cross-origin. Empty means same-origin only.
	WSOriginPatterns []string
	// Jobs tunes the jobs service (heartbeat, lease, cancel and follow
	// grace). Its Store, Logger and Registerer are set by the Server.
	Jobs jobs.Config
	// ShutdownSpread is the window over which Stop spreads the reconnect
	// hints it gives clients, so they do not all come back at once. Zero
	// means 5s; it is capped by Stop's deadline.
	ShutdownSpread time.Duration
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
	conns    *registry.Registry
	ws       *ws.Handler
	tcp      *tcp.Server // nil unless TCPAddr is set
	jobs     *jobs.Service
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
	if cfg.ShutdownSpread == 0 {
		cfg.ShutdownSpread = 5 * time.Second
	}
	if cfg.Retention.MaxAge < 0 || cfg.Retention.MaxMessages < 0 || cfg.DedupWindow < 0 || cfg.ShutdownSpread < 0 {
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
	if err := s.startJobs(ctx, st); err != nil {
		closeOwned(st, own)
		return err
	}
	lc := s.cfg.Lifecycle
	lc.Logger, lc.Registerer = s.log, s.cfg.Registry
	conns, err := registry.New(lc)
	if err != nil {
		s.stopJobs()
		closeOwned(st, own)
		return err
	}
	h, shutdown, err := s.handler(st, conns)
	if err != nil {
		s.stopJobs()
		closeOwned(st, own)
		return err
	}
	ln, err := conn.Listen(ctx, s.cfg.Addr, s.cfg.KeepAlive)
	if err != nil {
		s.stopJobs()
		closeOwned(st, own)
		return fmt.Errorf("tether: listen: %w", err)
	}
	if s.tcp != nil {
		if err := s.tcp.Start(ctx); err != nil {
			ln.Close()
			s.stopJobs()
			closeOwned(st, own)
			return fmt.Errorf("tether: listen tcp: %w", err)
		}
		s.log.Info("listening for TCP", "addr", s.tcp.Addr().String())
	}
	s.started, s.ln, s.conns, s.store, s.ownStore, s.stop = true, ln, conns, st, own, shutdown
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

// startJobs creates and starts the jobs service on the store. Start holds
// s.mu.
func (s *Server) startJobs(ctx context.Context, st store.Store) error {
	jc := s.cfg.Jobs
	jc.Store, jc.Logger, jc.Registerer = st, s.log, s.cfg.Registry
	svc, err := jobs.New(jc)
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	s.jobs = svc
	return nil
}

// stopJobs stops the jobs service after a failed Start.
func (s *Server) stopJobs() {
	if s.jobs != nil {
		s.jobs.Stop(context.Background())
		s.jobs = nil
	}
}

// Jobs returns the jobs service (nil before Start): create, read and
// cancel jobs in process, attach in-process workers.
func (s *Server) Jobs() *jobs.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs
}

// natsOpenTimeout bounds how long a server start waits for the NATS
// servers to answer and the stream to be created or updated.
const natsOpenTimeout = 30 * time.Second

func (s *Server) openStore() (store.Store, bool, error) {
	if s.cfg.Store != nil {
		return s.cfg.Store, false, nil
	}
	if s.cfg.NATS.URLs != "" || s.cfg.NATS.Conn != nil {
		nc := s.cfg.NATS
		nc.Retention, nc.DedupWindow, nc.Logger = s.cfg.Retention, s.cfg.DedupWindow, s.log
		ctx, cancel := context.WithTimeout(context.Background(), natsOpenTimeout)
		defer cancel()
		st, err := natsstore.Open(ctx, nc)
		if err != nil {
			return nil, false, fmt.Errorf("tether: open NATS JetStream store: %w", err)
		}
		return st, true, nil
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
func (s *Server) handler(st store.Store, conns *registry.Registry) (http.Handler, context.CancelCauseFunc, error) {
	shutdownCtx, shutdown := context.WithCancelCause(context.Background())
	core, err := s.transports(st, conns)
	if err != nil {
		shutdown(nil)
		return nil, nil, err
	}
	hc := s.cfg.HTTP
	hc.Shutdown = shutdownCtx
	api, err := httpapi.New(hc, core, s.jobs, s.cfg.Registry)
	if err != nil {
		shutdown(nil)
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	admin := httpapi.ConnectionsHandler(conns)
	mux.Handle("/v1/connections", admin)
	mux.Handle("/v1/connections/", admin)
	mux.Handle("/v1/ws", s.ws) // hijacks: outside Watch
	mux.Handle("/", api)
	return mux, shutdown, nil
}

// transports builds the framed protocol's engine and its two transports,
// which share it. The TCP server listens only in Start.
func (s *Server) transports(st store.Store, conns *registry.Registry) (*session.Core, error) {
	core, err := session.New(s.cfg.Protocol, st, conns, s.log, workerproto.New(s.jobs))
	if err != nil {
		return nil, err
	}
	if s.ws, err = ws.New(ws.Config{OriginPatterns: s.cfg.WSOriginPatterns}, core); err != nil {
		return nil, err
	}
	if s.cfg.TCPAddr != "" {
		if s.tcp, err = tcp.New(tcp.Config{Addr: s.cfg.TCPAddr, KeepAlive: s.cfg.KeepAlive}, core); err != nil {
			return nil, err
		}
	}
	return core, nil
}

// TCPAddr is the address of the TCP transport, or nil when it is off or
// before Start.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcp == nil || !s.started {
		return nil
	}
	return s.tcp.Addr()
}

func (s *Server) dataDesc() string {
	if s.cfg.Store != nil {
		return "(external store)"
	}
	if s.cfg.NATS.URLs != "" || s.cfg.NATS.Conn != nil {
		return "nats:" + s.cfg.NATS.URLs
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

// Registry returns the server's connection registry (nil before Start):
// list connections, close one, or read its Info.
func (s *Server) Registry() *registry.Registry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Stop stops the server gracefully. It stops accepting; tells every client
// over its own transport that the server is going away (a long-poll gets
// its keepalive answer, an SSE stream a shutdown event), with reconnect
// hints spread over ShutdownSpread; waits for them to leave until ctx ends,
// closing stragglers (graceful, then reset); lets publishes in flight
// finish, so nothing acknowledged is lost; then closes the store. It
// returns ctx.Err() when the deadline won.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	s.log.Info("stopping", "connections", len(s.conns.List()))
	s.ln.Close() // stop accepting; requests in flight go on
	if s.tcp != nil {
		s.tcp.StopAccepting()
	}
	err := s.conns.Shutdown(ctx, s.spread(ctx))
	s.stop(conn.ErrShutdown) // anything the registry does not track
	if s.tcp != nil {
		err = cmp.Or(err, s.tcp.Stop(ctx))
	}
	err = cmp.Or(err, s.ws.Stop(ctx))
	if herr := s.http.Shutdown(ctx); herr != nil {
		s.http.Close()
		err = cmp.Or(err, herr)
	}
	if serr := <-s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		s.log.Error("serve", "err", serr)
	}
	// Jobs are not cancelled by a stop: the service stops dispatching and
	// sweeping; running attempts keep their leases, which another node (or
	// this one restarted) honours or expires.
	if jerr := s.jobs.Stop(ctx); jerr != nil && err == nil {
		err = jerr
	}
	if s.ownStore {
		if cerr := s.store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	s.log.Info("stopped", "err", err)
	return err
}

// spread is the reconnect window: ShutdownSpread, but no more than half
// of what is left of ctx, so that clients can act on their hints.
func (s *Server) spread(ctx context.Context) time.Duration {
	d := s.cfg.ShutdownSpread
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return max(d, 0)
}

func closeOwned(st store.Store, own bool) {
	if own {
		st.Close()
	}
}
