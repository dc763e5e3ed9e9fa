package ws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/origin"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/wire"
)

// Config holds a Handler's settings.
type Config struct {
	// Origins are the browser origins whose pages may connect
	// cross-origin: the same origin.Matcher that drives the HTTP API's
	// CORS (--allowed-origins), so the two never disagree. Nil means
	// same-origin only; requests without an Origin header (non-browser
	// clients) are always accepted.
	Origins *origin.Matcher
}

// Subprotocol is the WebSocket subprotocol the server selects when the
// client offers it. A browser offers it beside the one carrying its token
// (auth.TokenProtocolPrefix), so that the handshake can select one that is
// not the token: a browser refuses a handshake that selects none of those
// it offered.
const Subprotocol = "tether"

// Handler serves the WebSocket transport: mount it at GET /v1/ws.
// ServeHTTP upgrades and hands the connection to the session core
// (session.Core.Start), which serves it on goroutines that run only while
// there is something to read or write, and ends it
// (registry.Registry.Shutdown ends them all). Stop refuses new upgrades
// and waits for the live connections to have wound up.
type Handler struct {
	cfg   Config
	core  *session.Core
	conns sync.WaitGroup // live connections: Done by ServeHTTP, or by the core's done

	mu      sync.Mutex
	stopped bool // guarded by mu
}

// New returns a Handler serving its connections on core (share one with
// the TCP server and the HTTP API).
func New(cfg Config, core *session.Core) (*Handler, error) {
	if core == nil {
		return nil, errors.New("tether: ws: a session core is required")
	}
	return &Handler{cfg: cfg, core: core}, nil
}

// ServeHTTP upgrades the request, starts the connection's session and
// returns: no goroutine stays with an idle connection.
// ?session=KEY presents a session key (1 to 255 bytes of printable ASCII).
// The token comes as "Authorization: Bearer" or, from a browser, which
// cannot set headers on a WebSocket, as ?token=. A page from an origin
// not allowed gets 403 forbidden_origin before the upgrade; a missing,
// invalid or expired token is told after it, in an error frame
// (unauthorized, token_expired) followed by a close with status 1008,
// since a browser page cannot read the status of a refused handshake.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET with a WebSocket upgrade")
		return
	}
	key := r.URL.Query().Get("session")
	if key != "" && !wire.ValidKey(key) {
		httpError(w, http.StatusBadRequest, "bad_request", "session must be 1 to 255 bytes of printable ASCII")
		return
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		httpError(w, http.StatusServiceUnavailable, "unavailable", "the server is stopping")
		return
	}
	h.conns.Add(1)
	h.mu.Unlock()
	started := false
	defer func() {
		if !started {
			h.conns.Done()
		}
	}()

	if !h.cfg.Origins.AllowWebSocket(r) {
		httpError(w, http.StatusForbidden, origin.CodeForbiddenOrigin, "origin "+r.Header.Get("Origin")+" is not in --allowed-origins")
		return
	}
	p, authErr := h.core.Authenticate(auth.TokenFromRequest(r))
	wkey, ref := checkHandshake(w, r)
	if ref != nil {
		httpError(w, ref.status, ref.code, ref.msg)
		return
	}
	nc, pending, err := upgrade(w, wkey, selectProtocol(r))
	if err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			httpError(w, http.StatusInternalServerError, "internal", "this connection cannot be taken over for a WebSocket")
		}
		return // else the connection is closed
	}
	wc := newConn(nc, pending, h.core.Config().MaxFrameSize)
	if authErr != nil {
		code, msg, _ := session.AuthCode(authErr)
		session.Refuse(wc, code, msg)
		return
	}
	oi := registry.OpenInfo{Transport: registry.TransportWebSocket, Remote: r.RemoteAddr, SessionKey: key, Conn: nc}
	// The core serves the connection on goroutines that run only while
	// there is something to read or write, and calls Done once it has
	// wound up: this goroutine (net/http's) returns now.
	started = h.core.Start(context.WithoutCancel(r.Context()), wc, p, oi, nil, h.conns.Done) == nil
}

// Stop refuses new connections and waits for the live ones to have wound
// up (the core's done). The Registry ends them (Registry.Shutdown: notify,
// then close); Stop ends none itself. It returns ctx.Err() if ctx ends
// first.
func (h *Handler) Stop(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
