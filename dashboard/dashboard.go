package dashboard

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
)

//go:embed ui
var uiFiles embed.FS

// Config configures the dashboard. Core is required; the rest may be zero.
type Config struct {
	// Retention is the store's retention, shown with the channels.
	Retention store.Retention
	// Interval is how often the event stream sends a snapshot, and how
	// long one snapshot is reused. Zero means DefaultInterval (1s).
	Interval time.Duration
	// MaxStreams bounds the event streams open at once; more are answered
	// 503 unavailable. Zero means DefaultMaxStreams (16).
	MaxStreams int
}

// Defaults of Config.
const (
	DefaultInterval   = time.Second
	DefaultMaxStreams = 16
)

// writeTimeout bounds one write of the event stream: a viewer that stops
// reading is dropped instead of holding its handler.
const writeTimeout = 10 * time.Second

// Dashboard serves the admin dashboard: the page, and the snapshot and
// event stream it reads. It is an http.Handler for the paths /admin,
// /admin/..., /v1/admin/snapshot and /v1/admin/events.
type Dashboard struct {
	cfg     Config
	core    *session.Core
	b       *builder
	streams chan struct{} // one token per open event stream
	mux     *http.ServeMux
	ui      fs.FS  // the page's files
	index   []byte // ui's index.html
}

// New returns the dashboard for cfg.
//
// Its sources are arguments: core is the node's session core (who may
// look: Authenticate, Authorize; the registry, the store and the
// subscriptions), js the jobs service (nil: the snapshot has no jobs
// section), g gives the process figures (goroutines, memory; nil: none).
func New(cfg Config, core *session.Core, js *jobs.Service, g prometheus.Gatherer) (*Dashboard, error) {
	if core == nil {
		return nil, errors.New("tether: dashboard: a session core is required")
	}
	if cfg.Interval < 0 || cfg.MaxStreams < 0 {
		return nil, errors.New("tether: dashboard: Interval and MaxStreams must not be negative")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	d := &Dashboard{
		cfg: cfg, core: core, b: newBuilder(cfg, sources{core: core, jobs: js, gatherer: g}),
		streams: make(chan struct{}, cfg.MaxStreams), mux: http.NewServeMux(),
	}
	ui, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		return nil, err
	}
	if d.index, err = fs.ReadFile(ui, "index.html"); err != nil {
		return nil, err
	}
	d.ui = ui
	d.mux.Handle("GET /admin", pageHeaders(http.HandlerFunc(d.page)))
	d.mux.Handle("GET /admin/{file}", pageHeaders(http.HandlerFunc(d.file)))
	d.mux.HandleFunc("/admin", methodNotAllowed)
	d.mux.Handle("GET /v1/admin/snapshot", d.guard(http.HandlerFunc(d.snapshot)))
	d.mux.Handle("GET /v1/admin/events", d.guard(http.HandlerFunc(d.events)))
	d.mux.HandleFunc("/v1/admin/snapshot", methodNotAllowed)
	d.mux.HandleFunc("/v1/admin/events", methodNotAllowed)
	d.mux.HandleFunc("/v1/admin/", notFound)
	d.mux.HandleFunc("/admin/{file}", methodNotAllowed)
	d.mux.HandleFunc("/admin/", notFound)
	return d, nil
}

// page serves the page at /admin itself: the node answers paths with a
// trailing slash as unclean (httpapi.CleanPaths).
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(d.index)
}

// file serves the page's own files (/admin/app.js, ...); any other name
// gets the API's JSON 404.
func (d *Dashboard) file(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if st, err := fs.Stat(d.ui, name); err != nil || st.IsDir() || name == "index.html" {
		notFound(w, r)
		return
	}
	http.ServeFileFS(w, r, d.ui, name)
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.mux.ServeHTTP(w, r) }

// pageHeaders sets the headers of the page's files: a Content Security
// Policy that runs only the page's own script and style (no inline code,
// nothing from elsewhere), and no framing, sniffing or caching.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// guard lets through only requests whose token has the admin permission,
// asked of the core like every other permission of the node
// (Core.Authorize, OpAdmin). In open mode everyone is admin.
func (d *Dashboard) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := d.core.Authenticate(auth.TokenFromRequest(r))
		if err == nil {
			err = d.core.Authorize(r.Context(), p, session.Act{Op: session.OpAdmin})
		}
		if err != nil {
			writeDenied(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// snapshot serves GET /v1/admin/snapshot: the current Snapshot as JSON.
func (d *Dashboard) snapshot(w http.ResponseWriter, r *http.Request) {
	b := d.b.get()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(b)
}

// events serves GET /v1/admin/events: a text/event-stream with one
// "snapshot" event per Interval, whose data is the Snapshot. It ends when
// the client goes, a write does not finish within writeTimeout, or the
// node shuts down (after a "shutdown" event).
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	select {
	case d.streams <- struct{}{}:
		defer func() { <-d.streams }()
	default:
		writeError(w, http.StatusServiceUnavailable, "unavailable", "too many dashboard streams are open")
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data []byte) error {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		buf := make([]byte, 0, len(data)+32)
		buf = append(buf, "event: "...)
		buf = append(buf, event...)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, data...) // JSON from encoding/json: one line
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
		return rc.Flush()
	}
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	closing := d.core.Registry().Closing()
	for {
		if err := send("snapshot", d.b.get()); err != nil {
			return
		}
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		case <-closing:
			send("shutdown", []byte("{}"))
			return
		}
	}
}

// writeDenied answers a denial of Authenticate or Authorize as every
// route of the node does: 401 with WWW-Authenticate (RFC 6750) or 403,
// with the stable JSON error body.
func writeDenied(w http.ResponseWriter, err error) {
	e, ok := auth.AsError(err)
	if !ok {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	if v := auth.WWWAuthenticate(err); v != "" {
		w.Header().Set("WWW-Authenticate", v)
	}
	writeError(w, e.Status(), string(e.Code), e.Message)
}

// writeError answers {"error": {"code": ..., "message": ...}}, the error
// body of the whole API (docs/api.md).
func writeError(w http.ResponseWriter, status int, code, msg string) {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Error body `json:"error"`
	}{body{code, msg}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
}
