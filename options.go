package tether

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/store"
)

// An Option gives New one of the Node's dependencies.
type Option func(*deps)

// deps are what a Node uses but does not configure.
type deps struct {
	store        store.Store // nil: the Node opens its own
	logger       *slog.Logger
	metrics      *prometheus.Registry
	onConnect    func(registry.Info)
	onDisconnect func(registry.Info, conn.Reason)
}

// WithStore makes the Node keep its channels and jobs in st instead of an
// engine it opens itself (Config.DataDir, Config.NATS). The Node does not
// close st.
func WithStore(st store.Store) Option { return func(d *deps) { d.store = st } }

// WithLogger sends the Node's logs to l. Without it they go to
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(d *deps) { d.logger = l } }

// WithMetrics registers the Node's metrics on r, which Handler serves at
// /metrics. Without it the Node makes its own registry with the Go and
// process collectors.
func WithMetrics(r *prometheus.Registry) Option { return func(d *deps) { d.metrics = r } }

// OnConnect calls f after each connection, of any transport, was admitted,
// on the connection's goroutine.
func OnConnect(f func(registry.Info)) Option { return func(d *deps) { d.onConnect = f } }

// OnDisconnect calls f once for each connection that ended, with its end
// reason (how the client left, or why the server ended it), on the
// connection's goroutine. A reconnect with the same session key is
// admitted only after f returned, so f may tear down per-session state.
func OnDisconnect(f func(registry.Info, conn.Reason)) Option {
	return func(d *deps) { d.onDisconnect = f }
}
