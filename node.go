package tether

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/dashboard"
	"github.com/tether-run/tether/httpapi"
	"github.com/tether-run/tether/internal/tlsreload"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/workerproto"
	"github.com/tether-run/tether/limits"
	"github.com/tether-run/tether/origin"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/natsstore"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
	"github.com/tether-run/tether/ws"
)

// Node is one tether node: its store, the registry of live connections,
// the session core every transport shares, the HTTP routes, the jobs
// service, and the listeners it serves.
type Node struct {
	cfg     Config
	log     *slog.Logger
	metrics *prometheus.Registry

	store    store.Store
	ownStore bool
	conns    *registry.Registry
	jobs     *jobs.Service
	api      *httpapi.API
	core     *session.Core
	tls      *tlsreload.Reloader // nil without TLS
	ws       *ws.Handler
	tcp      *tcp.Server
	handler  http.Handler

	mu       sync.Mutex // guards the fields below
	started  bool
	shutdown bool
	servers  []*httpServer // HTTP servers the Node runs (Start, Serve)
	tcpAddr  net.Addr      // the TCP listener Start opened
	done     chan struct{} // closed when Shutdown has finished
	doneErr  error         // Shutdown's result, once done is closed
}

// httpServer is one http.Server the Node runs, on a listener whose Close
// is idempotent: Shutdown stops accepting before it drains, and
// http.Server.Shutdown closes the listener again without an error.
type httpServer struct {
	srv  *http.Server
	ln   *onceListener
	done chan struct{} // closed when Serve has returned
	err  error         // Serve's result, once done is closed
}

// New checks cfg, opens the store (unless WithStore gave one) and builds
// the Node: Handler serves at once. Start begins the jobs service and the
// listeners Config names; Shutdown ends everything New and Start began.
func New(cfg Config, opts ...Option) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var d deps
	for _, o := range opts {
		o(&d)
	}
	n := &Node{cfg: cfg, log: d.logger, metrics: d.metrics, done: make(chan struct{})}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.metrics == nil {
		n.metrics = prometheus.NewRegistry()
		n.metrics.MustRegister(collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// One rollback: every step that must be undone pushes its undo, and a
	// failure runs them in reverse.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if n.store, n.ownStore, err = n.openStore(d.store); err != nil {
		return nil, err
	}
	if n.ownStore {
		undo = append(undo, func() { n.store.Close() })
	}
	if err = n.build(d); err != nil {
		return nil, err
	}
	return n, nil
}

// build makes the parts on the open store.
func (n *Node) build(d deps) error {
	var err error
	n.conns, err = registry.New(registry.Config{
		Logger: n.log, Registerer: n.metrics, AdmitTimeout: n.cfg.AdmitTimeout,
		OnConnect: d.onConnect, OnDisconnect: d.onDisconnect,
	})
	if err != nil {
		return err
	}
	if n.jobs, err = jobs.New(n.cfg.Jobs, n.store, n.log, n.metrics); err != nil {
		return err
	}
	acc, err := n.access()
	if err != nil {
		return err
	}
	guard, err := origin.New(origin.Config{AllowedOrigins: n.cfg.AllowedOrigins, AllowedHosts: n.cfg.AllowedHosts})
	if err != nil {
		return err
	}
	if n.cfg.TLSCertFile != "" {
		if n.tls, err = tlsreload.New(n.cfg.TLSCertFile, n.cfg.TLSKeyFile); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	proxies, err := parseTrustedProxies(n.cfg.TrustedProxies)
	if err != nil {
		return err
	}
	scfg := n.cfg.Session
	if scfg.Proxies == nil {
		scfg.Proxies = proxies // the heartbeat asks no kernel about a proxy
	}
	if n.core, err = session.New(scfg, n.store, n.conns, n.log, acc, workerproto.New(n.jobs)); err != nil {
		return err
	}
	if n.ws, err = ws.New(ws.Config{Origins: guard.Origins()}, n.core); err != nil {
		return err
	}
	if n.tcp, err = tcp.New(tcp.Config{KeepAlive: n.cfg.KeepAlive}, n.core); err != nil {
		return err
	}
	if n.api, err = httpapi.New(n.cfg.HTTP, n.core, n.jobs, n.metrics); err != nil {
		return err
	}
	dash, err := dashboard.New(dashboard.Config{Retention: n.cfg.Retention}, n.core, n.jobs, n.metrics)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics, promhttp.HandlerOpts{}))
	mux.Handle("/admin", dash)     // the admin dashboard's page
	mux.Handle("/admin/", dash)    // and its files
	mux.Handle("/v1/admin/", dash) // and what it reads (admin permission)
	mux.Handle("/v1/ws", n.ws)     // hijacks: outside conn.Watch
	mux.Handle("/", n.api)         // the connections admin API included
	// The client's address behind trusted proxies, then browser rules
	// (Host, CORS, cross-site refusals), then JSON errors, not redirects,
	// for unclean paths.
	n.handler = proxies.handler(guard.Handler(httpapi.CleanPaths(mux)))
	return nil
}

// access builds the token Verifier and the Limits.
func (n *Node) access() (session.Access, error) {
	v, err := auth.NewVerifier(n.cfg.Tokens)
	if err != nil {
		return session.Access{}, err
	}
	lc := n.cfg.Limits
	if v.Open() && lc.MaxConnectionsPerIP == 0 {
		lc.MaxConnectionsPerIP = -1 // no users to tell apart; see Config.Limits
	}
	// One bound per connection: the session's (--max-subscriptions-per-connection).
	lc.MaxSubscriptionsPerConnection = n.sessionMaxSubs()
	lc.Registerer = n.metrics
	lim, err := limits.New(lc)
	if err != nil {
		return session.Access{}, err
	}
	return session.Access{Verifier: v, Limits: lim}, nil
}

// sessionMaxSubs is the per-connection subscription bound the session core
// will apply (its default when unset).
func (n *Node) sessionMaxSubs() int {
	if m := n.cfg.Session.MaxSubscriptions; m > 0 {
		return m
	}
	return session.DefaultMaxSubscriptions
}

// Open reports whether the node runs open: no token configuration.
func (n *Node) Open() bool { return n.core.Open() }

// ReloadTLS reloads the certificate and key from Config's files; the
// tether binary calls it on SIGHUP. On an error the old certificate stays
// in use. Without TLS it does nothing.
func (n *Node) ReloadTLS() error {
	if n.tls == nil {
		return nil
	}
	return n.tls.Reload()
}

// checkOpen refuses, in open mode, to listen where others can connect.
func (n *Node) checkOpen() error {
	if !n.core.Open() {
		return nil
	}
	for _, a := range []string{n.cfg.Addr, n.cfg.TCPAddr} {
		if a != "" && !loopback(a) && !n.cfg.Insecure {
			return fmt.Errorf("tether: refusing to listen on %s in open mode (no token configuration: anyone could publish, read every channel and use the admin API); configure tokens, listen on loopback, or pass --insecure", a)
		}
	}
	n.log.Warn("OPEN MODE: no token configuration (--token-secret-file, --token-keys-file); every client may read and publish any channel, run and cancel jobs and use the admin API. For development only.",
		"addr", n.cfg.Addr, "tcp_addr", n.cfg.TCPAddr, "insecure", n.cfg.Insecure)
	return nil
}

// checkOpenListener is checkOpen for a listener the caller opened (Serve,
// ServeTCP): in open mode, one that others can reach is refused unless
// Insecure. A listener that is not TCP (a unix socket) is local.
func (n *Node) checkOpenListener(ln net.Listener) error {
	if !n.core.Open() || n.cfg.Insecure {
		return nil
	}
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok || a.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("tether: refusing to serve on %s in open mode (no token configuration: anyone could publish, read every channel and use the admin API); configure tokens, listen on loopback, or set Config.Insecure", a)
}

// listen opens a listener of Listen, under TLS when configured.
func (n *Node) listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := Listen(ctx, addr, n.cfg.KeepAlive)
	if err != nil || n.tls == nil {
		return ln, err
	}
	return tls.NewListener(ln, n.tls.TLSConfig()), nil
}

// natsOpenTimeout bounds how long New waits for the NATS servers to answer
// and the stream to be created or updated.
const natsOpenTimeout = 30 * time.Second

func (n *Node) openStore(given store.Store) (store.Store, bool, error) {
	if given != nil {
		return given, false, nil
	}
	if n.cfg.NATS.URLs != "" {
		ctx, cancel := context.WithTimeout(context.Background(), natsOpenTimeout)
		defer cancel()
		st, err := natsstore.Open(ctx, natsstore.Config{
			URLs: n.cfg.NATS.URLs, Stream: n.cfg.NATS.Stream, Replicas: n.cfg.NATS.Replicas,
			Retention: n.cfg.Retention, DedupWindow: n.cfg.DedupWindow, Logger: n.log,
			ChannelIdle: n.cfg.ChannelIdle,
		})
		if err != nil {
			return nil, false, fmt.Errorf("open NATS JetStream store: %w", err)
		}
		return st, true, nil
	}
	st, err := pebblestore.Open(pebblestore.Config{
		Dir: n.cfg.DataDir, Retention: n.cfg.Retention, DedupWindow: n.cfg.DedupWindow, Logger: n.log,
		Reserve: n.cfg.DataReserve, ChannelIdle: n.cfg.ChannelIdle,
	})
	switch {
	case errors.Is(err, pebblestore.ErrLocked):
		return nil, false, err // it names the directory and what to do
	case err != nil:
		return nil, false, fmt.Errorf("open data dir %s: %w", n.cfg.DataDir, err)
	}
	return st, true, nil
}

// Handler serves every HTTP route of the API (docs/api.md), the WebSocket
// endpoint /v1/ws, the connections admin API, the admin dashboard (/admin)
// and /metrics. Mount it on your own mux at the root (its routes all start
// with /v1/, plus /healthz, /metrics and /admin); serve it on a listener
// from Listen, with
// http.Server.ConnContext set to ConnContext, for full departure
// detection (see the package documentation for what is lost without).
// Handler cannot see where it is served: in open mode (no token
// configuration) Start, Serve and ServeTCP refuse an address others can
// reach, but a Handler mounted on your own server is your responsibility.
func (n *Node) Handler() http.Handler { return n.handler }

// Start starts the jobs service and the listeners Config names (Addr for
// HTTP, TCPAddr for the framed TCP protocol). It returns once they are
// open, so Addr and TCPAddr are valid when it returns nil. On an error
// nothing Start began is left running.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.shutdown:
		return errors.New("tether: node is shut down")
	case n.started:
		return errors.New("tether: node already started")
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err = n.checkOpen(); err != nil {
		return err
	}
	if err = n.jobs.Start(ctx); err != nil {
		return err
	}
	undo = append(undo, func() { n.jobs.Stop(context.Background()) })
	if n.cfg.TCPAddr != "" {
		ln, err := n.listen(ctx, n.cfg.TCPAddr)
		if err != nil {
			return fmt.Errorf("listen tcp: %w", err)
		}
		undo = append(undo, func() { ln.Close() })
		n.tcpAddr = ln.Addr()
		go n.tcp.Serve(ln) // ends when Shutdown stops the TCP transport
		n.log.Info("listening for TCP", "addr", ln.Addr().String(), "tls", n.tls != nil)
	}
	if n.cfg.Addr != "" {
		ln, err := n.listen(ctx, n.cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		n.serveLocked(ln)
		n.log.Info("listening", "addr", ln.Addr().String(), "data", n.dataDesc(), "tls", n.tls != nil, "open", n.core.Open())
	}
	n.started = true
	return nil
}

// Serve serves Handler on ln until Shutdown, and returns nil then. Use a
// listener from Listen for full departure detection. Start calls it for
// Config.Addr; call it yourself for more listeners. In open mode a
// listener others can reach (TCP, not loopback) is refused unless
// Config.Insecure.
func (n *Node) Serve(ln net.Listener) error {
	if err := n.checkOpenListener(ln); err != nil {
		return err
	}
	n.mu.Lock()
	if n.shutdown {
		n.mu.Unlock()
		return errors.New("tether: node is shut down")
	}
	hs := n.serveLocked(ln)
	n.mu.Unlock()
	<-hs.done
	if errors.Is(hs.err, http.ErrServerClosed) {
		return nil
	}
	return hs.err
}

// serveLocked starts an http.Server for Handler on ln. n.mu is held.
func (n *Node) serveLocked(ln net.Listener) *httpServer {
	// Long-polls that wait over HTTP/1.1 hand their connections back
	// through hl once answered (httpapi.Listener).
	hl := httpapi.NewListener(ln)
	hl.IdleTimeout = idleTimeout
	hs := &httpServer{
		ln: &onceListener{Listener: hl},
		srv: &http.Server{
			Handler:           n.handler,
			BaseContext:       hl.BaseContext,
			ConnContext:       ConnContext,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		},
		done: make(chan struct{}),
	}
	n.servers = append(n.servers, hs)
	go func() {
		defer close(hs.done)
		hs.err = hs.srv.Serve(hs.ln)
		if hs.ln.closed.Load() && errors.Is(hs.err, net.ErrClosed) {
			// Shutdown closes the listener before http.Server.Shutdown
			// (so that no connection is accepted while others drain):
			// Serve's accept error is that stop, not a failure.
			hs.err = http.ErrServerClosed
		}
	}()
	return hs
}

// idleTimeout is how long an HTTP connection waits for its next request.
const idleTimeout = 2 * time.Minute

// ServeTCP serves the framed protocol over plain TCP on ln until Shutdown
// (docs/protocol.md). Use a listener from Listen, so that a silent peer is
// noticed within the keepalive bound. Like Serve, it refuses in open mode
// a listener others can reach.
func (n *Node) ServeTCP(ln net.Listener) error {
	if err := n.checkOpenListener(ln); err != nil {
		return err
	}
	return n.tcp.Serve(ln)
}

// Addr is the address of the HTTP listener Start opened, or nil.
func (n *Node) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg.Addr == "" || len(n.servers) == 0 {
		return nil
	}
	return n.servers[0].ln.Addr()
}

// TCPAddr is the address of the TCP listener Start opened, or nil.
func (n *Node) TCPAddr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tcpAddr
}

// Connections is the registry of live connections on this node: list
// them, close one, read its Info.
func (n *Node) Connections() *registry.Registry { return n.conns }

// Jobs is the jobs service: create, read and cancel jobs in process,
// attach in-process workers.
func (n *Node) Jobs() *jobs.Service { return n.jobs }

// Store is the store the Node keeps its channels in.
func (n *Node) Store() store.Store { return n.store }

func (n *Node) dataDesc() string {
	switch {
	case !n.ownStore:
		return "(external store)"
	case n.cfg.NATS.URLs != "":
		return "nats:" + n.cfg.NATS.URLs
	}
	if abs, err := filepath.Abs(n.cfg.DataDir); err == nil {
		return abs
	}
	return n.cfg.DataDir
}

// onceListener is a listener whose Close acts once: later calls return
// nil. Shutdown closes it to stop accepting; http.Server.Shutdown closes
// it again, which must not be an error (it was, under load, when Serve
// had not yet noticed the first close).
type onceListener struct {
	net.Listener
	once   sync.Once
	err    error
	closed atomic.Bool // Close was called: by Shutdown
}

func (l *onceListener) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		l.err = l.Listener.Close()
	})
	return l.err
}

// Listen opens a TCP listener whose connections tell departures apart:
// keepalive and TCP_USER_TIMEOUT as ka says (the zero value notices a
// silent peer within 10 s), and the read errors that Handler's departure
// detection needs. Serve it with Node.Serve, or on your own http.Server
// with ConnContext set to ConnContext.
func Listen(ctx context.Context, addr string, ka conn.KeepAlive) (net.Listener, error) {
	return conn.Listen(ctx, addr, ka)
}

// ConnContext is the http.Server.ConnContext that Handler needs to see the
// socket of each request: without it, a long-poll or SSE client's
// departure is reported only as net/http sees it (canceled).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return conn.ConnContext(ctx, httpapi.Unreplayed(c))
}
