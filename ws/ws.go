package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
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

// Handler serves the WebSocket transport: mount it at GET /v1/ws. Each
// connection's goroutine is the ServeHTTP call that upgraded it (net/http
// owns it); it writes the connection's frames for the session core, which
// ends it (registry.Registry.Shutdown ends them all). Stop refuses new
// upgrades and waits for the live ones.
type Handler struct {
	cfg   Config
	core  *session.Core
	conns sync.WaitGroup

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

// ServeHTTP upgrades the request and serves the connection until it ends.
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
	defer h.conns.Done()

	if !h.cfg.Origins.AllowWebSocket(r) {
		httpError(w, http.StatusForbidden, origin.CodeForbiddenOrigin, "origin "+r.Header.Get("Origin")+" is not in --allowed-origins")
		return
	}
	p, authErr := h.core.Authenticate(auth.TokenFromRequest(r))
	rec := &hijackRecorder{ResponseWriter: w}
	// The Origin was checked above, against the one list of allowed
	// origins; the library's own check (host patterns) would differ.
	c, err := websocket.Accept(rec, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered the client
	}
	// The Session bounds frames itself, so that an oversized one is
	// answered with an error frame before the close (the library's limit
	// would close at once).
	c.SetReadLimit(-1)
	wc := &wsConn{c: c, nc: rec.nc, limit: h.core.Config().MaxFrameSize}
	if authErr != nil {
		code, msg, _ := session.AuthCode(authErr)
		session.Refuse(wc, code, msg)
		return
	}
	oi := registry.OpenInfo{Transport: registry.TransportWebSocket, Remote: r.RemoteAddr, SessionKey: key, Conn: rec.nc}
	h.core.Serve(context.WithoutCancel(r.Context()), wc, p, oi, nil)
}

// Stop refuses new connections and waits for the live ones, which the
// Registry ends (Registry.Shutdown: notify, then close); it ends none
// itself. It returns ctx.Err() if ctx ends first.
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

// hijackRecorder keeps the raw connection websocket.Accept hijacks, which
// conn.CloseConn needs for reset and discard.
type hijackRecorder struct {
	http.ResponseWriter
	nc net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.nc = nc
	return nc, brw, err
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// wsConn frames a WebSocket connection: one frame per message.
type wsConn struct {
	c     *websocket.Conn
	nc    net.Conn
	limit int
	buf   bytes.Buffer // the reader goroutine's
}

// ReadFrame reads one message, text or binary, reading at most limit+1
// bytes of it.
func (c *wsConn) ReadFrame(ctx context.Context) ([]byte, error) {
	_, r, err := c.c.Reader(ctx)
	if err != nil {
		return nil, err
	}
	c.buf.Reset()
	n, err := c.buf.ReadFrom(io.LimitReader(r, int64(c.limit)+1))
	if err != nil {
		return nil, err
	}
	if n > int64(c.limit) {
		return nil, session.ErrFrameTooLarge
	}
	return c.buf.Bytes(), nil
}

func (c *wsConn) WriteFrame(ctx context.Context, frame []byte, _ bool) error {
	return c.c.Write(ctx, websocket.MessageText, frame)
}

// CloseGracefully sends a close frame (RFC 6455 §5.5.1) with a status for
// the reason and waits, up to the library's 5s, for the peer's.
func (c *wsConn) CloseGracefully(reason conn.Reason) error {
	code := websocket.StatusNormalClosure
	switch reason {
	case conn.ReasonShutdown:
		code = websocket.StatusGoingAway
	case conn.ReasonProtocolError, conn.ReasonSlowConsumer, session.ReasonTokenExpired:
		code = websocket.StatusPolicyViolation
	}
	return c.c.Close(code, string(reason))
}

func (c *wsConn) Format() session.Format { return session.JSON }
func (c *wsConn) Close() error           { return c.c.CloseNow() }
func (c *wsConn) NetConn() net.Conn      { return c.nc }

// Reason: a close frame from the peer is an orderly close.
func (c *wsConn) Reason(err error) conn.Reason {
	if websocket.CloseStatus(err) != -1 {
		return conn.ReasonClosed
	}
	return session.ReasonOf(err)
}
