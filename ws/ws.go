package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/framebuf"
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
	limit := h.core.Config().MaxFrameSize
	je := &jsonErrors{ResponseWriter: w}
	rec := &hijackRecorder{ResponseWriter: je, limit: limit}
	// The Origin was checked above, against the one list of allowed
	// origins; the library's own check (host patterns) would differ.
	c, err := websocket.Accept(rec, r, &websocket.AcceptOptions{InsecureSkipVerify: true, Subprotocols: []string{Subprotocol}})
	if err != nil {
		je.finish() // Accept has answered the client: as JSON
		return
	}
	// The guard bounds frames from their headers and the transport counts
	// what it reads (ReadFrame), so that an oversized frame is answered
	// with an error frame and close 1009 (the library's limit counts
	// payload as it reads it, and would close at once).
	c.SetReadLimit(-1)
	wc := &wsConn{c: c, nc: rec.nc, gc: rec.gc, g: rec.g, limit: limit}
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
// conn.CloseConn needs for reset and discard, and puts the frameGuard
// between it and the library: every byte the client sends, including any
// net/http had already buffered, passes the guard.
type hijackRecorder struct {
	http.ResponseWriter
	limit int
	nc    net.Conn
	g     *frameGuard
	gc    *guardedConn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nc, brw, err
	}
	h.nc = nc
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	h.g = newFrameGuard(io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), nc), h.limit)
	h.gc = &guardedConn{Conn: nc, g: h.g}
	brw.Reader.Reset(h.gc)
	// The library writes only control frames now (pong, close: at most
	// 127 bytes each, RFC 6455 §5.5), each flushed at once from net/http's
	// 4 KiB writer (which its connection keeps anyway): each is a single
	// Write, which guardedConn serialises with the data batches.
	brw.Writer.Reset(h.gc)
	return h.gc, brw, nil
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// wsConn frames a WebSocket connection: one frame per message. The
// library reads, and writes the control frames (pong, close); the data
// frames the session's writer sends are framed here, gathered in out and
// written in one write(2) per wake-up of the writer (the library flushes
// every message on its own). Both write through gc, which serialises them.
type wsConn struct {
	c     *websocket.Conn
	nc    net.Conn
	gc    *guardedConn
	g     *frameGuard
	limit int
	buf   framebuf.Buffer // the reader goroutine's
	out   framebuf.Batch  // the writer goroutine's
	// code is the close status a protocol error calls for (1009, 1007),
	// set by the reader before the session decides the end; 0: 1008.
	code atomic.Int32
}

// ReadFrame reads one message, text or binary. The guard has checked its
// size from the headers; the count here is a second line. The buffer a
// large message borrowed goes back to its pool before the next wait
// (framebuf), so an idle connection keeps framebuf.Idle bytes.
func (c *wsConn) ReadFrame(ctx context.Context) ([]byte, error) {
	c.buf.Reset()
	_, r, err := c.c.Reader(ctx)
	if err != nil {
		return nil, c.readErr(err)
	}
	if err := c.buf.ReadLimited(r, c.limit+1); err != nil {
		return nil, c.readErr(err)
	}
	if c.buf.Len() > c.limit {
		c.code.Store(int32(websocket.StatusMessageTooBig))
		return nil, session.ErrFrameTooLarge
	}
	b := c.buf.Bytes()
	if !utf8.Valid(b) {
		// RFC 6455 §8.1: text must be UTF-8, and §7.4.1 names 1007 for
		// data inconsistent with its type; tether's frames are JSON text
		// in either message type.
		c.code.Store(int32(websocket.StatusInvalidFramePayloadData))
		return nil, wire.ErrInvalidUTF8
	}
	return b, nil
}

// readErr prefers the guard's error: the library wraps it, or reports
// what followed it.
func (c *wsConn) readErr(err error) error {
	if gerr := c.g.failed(); errors.Is(gerr, session.ErrFrameTooLarge) {
		c.code.Store(int32(websocket.StatusMessageTooBig))
		return gerr
	}
	return err
}

// WriteFrame adds frame to the batch as one unfragmented text frame,
// unmasked as a server's are (RFC 6455 §5.1, §5.2), and writes the batch
// when flush says nothing more is queued or it has grown to
// framebuf.FlushAt.
func (c *wsConn) WriteFrame(_ context.Context, frame []byte, flush bool) error {
	if frame != nil {
		var hdr [10]byte
		c.out.Write(appendHeader(hdr[:0], len(frame)))
		c.out.Write(frame)
	}
	if flush || c.out.Len() >= framebuf.FlushAt {
		return c.out.Flush(c.gc)
	}
	return nil
}

// appendHeader appends the header of a final, unmasked text frame of n
// bytes: FIN and opcode 1, then the payload length in 7 bits, or 126 and
// 16 bits, or 127 and 64 bits, the shortest that holds it (RFC 6455
// §5.2).
func appendHeader(b []byte, n int) []byte {
	b = append(b, 0x81)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

// closeWait bounds the close handshake (the library waits up to 5s, and
// reads the rest of a frame the peer left unfinished without a deadline):
// past it the connection is reset.
const closeWait = time.Second

// CloseGracefully sends a close frame (RFC 6455 §5.5.1) with a status for
// the reason and waits up to closeWait for the peer's, reading no more
// than the guard's closeBudget meanwhile; then it resets.
func (c *wsConn) CloseGracefully(reason conn.Reason) error {
	code := websocket.StatusNormalClosure
	switch reason {
	case conn.ReasonShutdown:
		code = websocket.StatusGoingAway
	case conn.ReasonProtocolError, conn.ReasonSlowConsumer, session.ReasonTokenExpired:
		code = websocket.StatusPolicyViolation
	}
	c.g.stop()
	done := make(chan error, 1)
	go func() { done <- c.c.Close(code, string(reason)) }()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		conn.CloseConn(c.nc, conn.CloseReset)
		return <-done
	}
}

// abortWait bounds the write of the close frame after a protocol error.
const abortWait = 250 * time.Millisecond

// Abort implements session.Aborter: after a protocol error nothing more
// is read, so it writes the close frame (1009 for a frame too large, 1007
// for invalid UTF-8, else 1008) within abortWait, and resets. The writer
// has stopped, and gc serialises the raw write with the library's.
func (c *wsConn) Abort(reason conn.Reason) error {
	c.g.stop()
	code := websocket.StatusCode(c.code.Load())
	if code == 0 {
		code = websocket.StatusPolicyViolation
	}
	frame := []byte{0x88, byte(2 + len(reason)), byte(code >> 8), byte(code)}
	frame = append(frame, reason...)
	c.nc.SetWriteDeadline(time.Now().Add(abortWait))
	c.gc.Write(frame)
	err := conn.CloseConn(c.nc, conn.CloseReset)
	c.c.CloseNow()
	return err
}

func (c *wsConn) Format() session.Format { return session.JSON }
func (c *wsConn) NetConn() net.Conn      { return c.nc }

// Close releases the connection at once; the guard stops reads first, so
// that the library's close reads nothing more.
func (c *wsConn) Close() error {
	c.g.stop()
	return c.c.CloseNow()
}

// Reason: a close frame from the peer is an orderly close.
func (c *wsConn) Reason(err error) conn.Reason {
	if websocket.CloseStatus(err) != -1 {
		return conn.ReasonClosed
	}
	return session.ReasonOf(err)
}
