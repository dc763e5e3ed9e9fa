package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-run/tether/wire"
)

// DefaultHeartbeatTimeout is how long a connection may hear nothing from
// the server before it is taken for dead: the 10 s the server promises
// about its clients (docs/protocol.md, "Heartbeats").
const DefaultHeartbeatTimeout = 10 * time.Second

var (
	// ErrConnLost: the connection ended before the answer came. A request
	// may or may not have been carried out.
	ErrConnLost = errors.New("tether: client: connection lost")
	// ErrHeartbeatTimeout is the cause of a connection the server was
	// silent on for longer than the heartbeat timeout.
	ErrHeartbeatTimeout = errors.New("tether: client: server silent past the heartbeat timeout")
	// ErrServerShutdown is the cause of a connection the server ended with
	// a shutdown frame; ShutdownHint says when to come back.
	ErrServerShutdown = errors.New("tether: client: the server is shutting down")
)

// ConnConfig configures a Conn. Every field's zero value picks the default
// its doc names.
type ConnConfig struct {
	// Session is the session key presented to the server (WebSocket:
	// ?session=, TCP: a hello frame). Empty: none.
	Session string
	// Token is the connection's token (a JWT), for a server with access
	// control: Authorization: Bearer on the WebSocket handshake, the hello
	// frame on TCP. Empty: none.
	Token string
	// TokenSource, when set, replaces Token: it gives the token of the
	// connection, and a fresh one before that one expires, which the
	// watchdog sends as a refresh frame so that the server does not end
	// the connection with token_expired.
	TokenSource TokenSource
	// HeartbeatTimeout: a server that sent nothing for this long is taken
	// for dead and the connection is closed (ErrHeartbeatTimeout). After
	// half of it in silence the Conn sends a ping of its own. Zero means
	// DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// HTTPClient makes the WebSocket handshake. Nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// OnFrame receives every frame from the server that is neither the
	// answer to one of this Conn's requests nor a ping: a wire.Message,
	// wire.Gap, wire.ErrorFrame (of a subscription, or the connection's
	// end), wire.Shutdown, wire.JobFrame, wire.JobSignal or wire.Unknown.
	// It is called on the Conn's reader goroutine, one frame at a time in
	// the order they came; while it runs no other frame is read, so it
	// must not wait for an answer on this Conn (time spent in it does not
	// count as the server's silence). Nil: such frames are dropped.
	OnFrame func(frame any)
}

// Conn is one framed connection to a tether server, WebSocket or TCP,
// without reconnects: the building block of Client, and of the worker
// package. It matches answers to requests by id, answers the server's
// pings, and closes itself when the server is silent past the heartbeat
// timeout or sends a shutdown frame (after answering it with bye).
//
// Its methods may be called from any goroutine. It owns two goroutines, a
// reader and a heartbeat watchdog; both end when the connection ends, and
// Close waits for them.
type Conn struct {
	fc        frameConn
	transport string
	cfg       ConnConfig
	done      chan struct{} // closed when the reader has returned
	watchDone chan struct{} // closed when the watchdog has returned

	lastRecv atomic.Int64 // unix nanos
	inFrame  atomic.Bool  // the reader is in OnFrame: not reading is then the client's doing
	nextID   atomic.Uint64
	hint     atomic.Int64 // reconnect_after_ms of a shutdown frame, +1; 0: none
	// refreshAt is when the token is due for a refresh (unix nanos; 0:
	// never). Read and written by the watchdog after dial.
	refreshAt atomic.Int64

	mu      sync.Mutex
	pending map[string]chan any // guarded by mu; by request id: a wire.Reply or *wire.ErrorFrame
	closed  bool                // guarded by mu
	err     error               // guarded by mu; why it ended
}

// DialConn connects to rawURL: ws://host:port or wss:// (the path defaults
// to /v1/ws; http:// and https:// are taken for ws:// and wss://), or
// tcp://host:port. It returns once the connection is open (for TCP with a
// session key, once the hello frame is written). A WebSocket handshake
// refused with an HTTP status is ErrUpgradeRefused.
func DialConn(ctx context.Context, rawURL string, cfg ConnConfig) (*Conn, error) {
	e, err := parseURL(rawURL, "")
	if err != nil {
		return nil, err
	}
	return dialConn(ctx, e, cfg)
}

func dialConn(ctx context.Context, e endpoint, cfg ConnConfig) (*Conn, error) {
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if cfg.Session != "" && !wire.ValidKey(cfg.Session) {
		return nil, errors.New("tether: client: a session key is 1 to 255 bytes of printable ASCII")
	}
	if cfg.TokenSource != nil {
		tok, err := cfg.TokenSource(ctx)
		if err != nil {
			return nil, fmt.Errorf("tether: client: token: %w", err)
		}
		cfg.Token = tok
	}
	fc, err := dialFrames(ctx, e, cfg.Session, withToken(cfg.HTTPClient, cfg.Token))
	if err != nil {
		return nil, err
	}
	c := &Conn{
		fc: fc, transport: TransportWebSocket, cfg: cfg,
		done: make(chan struct{}), watchDone: make(chan struct{}), pending: map[string]chan any{},
	}
	if e.scheme == "tcp" {
		c.transport = TransportTCP
		if cfg.Session != "" || cfg.Token != "" {
			if err := c.Send(ctx, wire.ClientFrame{Type: wire.TypeHello, Session: cfg.Session, Token: cfg.Token}); err != nil {
				fc.close()
				return nil, err
			}
		}
	}
	c.lastRecv.Store(time.Now().UnixNano())
	if at := refreshAt(cfg.Token, time.Now()); cfg.TokenSource != nil && !at.IsZero() {
		c.refreshAt.Store(at.UnixNano())
	}
	go c.readLoop()
	go c.watch()
	return c, nil
}

// Transport is TransportWebSocket or TransportTCP.
func (c *Conn) Transport() string { return c.transport }

// Done is closed once the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (ErrHeartbeatTimeout, ErrServerShutdown,
// the read error, or the *wire.ErrorFrame the server ended it with); nil
// while it lives.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ShutdownHint reports the server's reconnect_after_ms, once a shutdown
// frame came.
func (c *Conn) ShutdownHint() (time.Duration, bool) {
	h := c.hint.Load()
	return time.Duration(h-1) * time.Millisecond, h > 0
}

// Close ends the connection at once (no bye) and waits for its goroutines.
func (c *Conn) Close() error {
	c.shut(ErrClosed)
	<-c.done
	<-c.watchDone
	return nil
}

// Bye sends a bye frame (the client is leaving; the server flushes and
// closes), then closes the connection.
func (c *Conn) Bye() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Send(ctx, wire.ClientFrame{Type: wire.TypeBye})
	c.Close()
}

func (c *Conn) readLoop() {
	defer close(c.done)
	for {
		b, err := c.fc.read(context.Background())
		if err != nil {
			c.shut(err)
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		f, err := wire.DecodeServer(b)
		if err != nil {
			c.shut(fmt.Errorf("tether: client: bad frame from the server: %w", err))
			return
		}
		switch f := f.(type) {
		case wire.Reply:
			if c.answer(f.ID, f) {
				continue
			}
		case wire.ErrorFrame:
			if f.ID != "" && c.answer(f.ID, &f) {
				continue
			}
			if f.ID == "" && f.Channel == "" { // the server is ending the connection
				c.setErr(&f)
			}
		case wire.Ping:
			if f.Type == wire.TypePing {
				// Answered here, in order: a write blocks only while the
				// server does not read, and then nothing else would help.
				c.Send(context.Background(), wire.ClientFrame{Type: wire.TypePong, ID: f.ID})
			}
			continue // a pong: lastRecv is all it is for
		case wire.Shutdown:
			c.hint.Store(f.ReconnectAfterMS + 1)
			c.setErr(ErrServerShutdown)
			if c.cfg.OnFrame != nil {
				c.cfg.OnFrame(f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.Send(ctx, wire.ClientFrame{Type: wire.TypeBye})
			cancel()
			c.shut(ErrServerShutdown)
			continue // the read that follows fails and ends the loop
		}
		if c.cfg.OnFrame != nil {
			c.inFrame.Store(true)
			c.cfg.OnFrame(f)
			c.lastRecv.Store(time.Now().UnixNano())
			c.inFrame.Store(false)
		}
	}
}

// watch closes the connection when the server has been silent past the
// heartbeat timeout, pinging it after half of that, and refreshes the
// token when it is due (maybeRefresh).
func (c *Conn) watch() {
	defer close(c.watchDone)
	hb := c.cfg.HeartbeatTimeout
	t := time.NewTicker(hb / 8)
	defer t.Stop()
	pinged := int64(0)
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if c.inFrame.Load() {
			// OnFrame holds the reader (the application is behind):
			// the server is not silent, this client is not reading. The
			// server decides (slow consumer); the silence counts anew
			// once OnFrame returns.
			continue
		}
		last := c.lastRecv.Load()
		silent := time.Since(time.Unix(0, last))
		switch {
		case silent > hb:
			c.shut(ErrHeartbeatTimeout)
			return
		case silent > hb/2 && pinged != last:
			pinged = last
			id := "p" + strconv.FormatUint(c.nextID.Add(1), 10)
			c.Send(context.Background(), wire.ClientFrame{Type: wire.TypePing, ID: id})
		}
		c.maybeRefresh()
	}
}

func (c *Conn) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// shut ends the connection: pending requests fail with ErrConnLost.
func (c *Conn) shut(err error) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.err == nil {
			c.err = err
		}
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
	}
	c.mu.Unlock()
	c.fc.close()
}

func (c *Conn) answer(id string, v any) bool {
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- v // buffered
	}
	return ok
}

// Send writes one frame without waiting for an answer. A write that fails
// ends the connection (ErrConnLost).
func (c *Conn) Send(ctx context.Context, frame any) error {
	b, err := wire.Encode(frame)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.fc.write(ctx, b); err != nil {
		c.shut(err)
		return ErrConnLost
	}
	return nil
}

// Request sends a client request with a fresh id (f.ID is overwritten)
// and waits for its answer: the reply, a *wire.ErrorFrame when the server
// refused it, ErrConnLost when the connection ended first, or ctx's error.
func (c *Conn) Request(ctx context.Context, f wire.ClientFrame) (wire.Reply, error) {
	return c.request(ctx, func(id string) any { f.ID = id; return f })
}

// RequestWorker is Request for a worker request.
func (c *Conn) RequestWorker(ctx context.Context, f wire.WorkerRequest) (wire.Reply, error) {
	return c.request(ctx, func(id string) any { f.ID = id; return f })
}

func (c *Conn) request(ctx context.Context, frame func(id string) any) (wire.Reply, error) {
	id := "r" + strconv.FormatUint(c.nextID.Add(1), 10)
	ch := make(chan any, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return wire.Reply{}, ErrConnLost
	}
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.Send(ctx, frame(id)); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return wire.Reply{}, err
	}
	select {
	case v, ok := <-ch:
		if !ok {
			return wire.Reply{}, ErrConnLost
		}
		if ef, isErr := v.(*wire.ErrorFrame); isErr {
			return wire.Reply{}, ef
		}
		return v.(wire.Reply), nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return wire.Reply{}, context.Cause(ctx)
	}
}
