package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/framebuf"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/wire"
)

// Config holds a Server's settings.
type Config struct {
	// Addr is the address Start listens on, e.g. "127.0.0.1:7070" (port 0
	// picks a free one; see Addr). Required by Start, unused by Serve.
	Addr string
	// KeepAlive sets TCP keepalive and TCP_USER_TIMEOUT on accepted
	// connections (Start only), so a silent peer is noticed with reason
	// timeout. The zero value takes conn.KeepAlive's defaults.
	KeepAlive conn.KeepAlive
	// HelloTimeout bounds the wait for a connection's first frame (hello
	// or a request), before which it is not yet registered. Zero means
	// the core's PingTimeout (10s by default).
	HelloTimeout time.Duration
}

// Server serves the framed protocol over plain TCP, one NDJSON frame per
// line. Its goroutines: one accept loop per Serve, and one per connection
// until its first frame (hello) is read and the session core has started
// it (session.Core.Start); from then on the connection has goroutines only
// while there is something to read or write. The core ends connections
// (registry.Registry.Shutdown ends them all); Stop closes the listeners
// and waits for every connection to have wound up.
type Server struct {
	cfg   Config
	core  *session.Core
	stop  chan struct{}  // closed by StopAccepting
	conns sync.WaitGroup // live connections: Done by handle, or by the core's done

	mu    sync.Mutex
	lns   []net.Listener // guarded by mu
	done  bool           // guarded by mu; Stop was called
	serve sync.WaitGroup // accept loops
}

// ErrStopped is returned by Start and Serve after Stop.
var ErrStopped = errors.New("tether: tcp server stopped")

// New validates cfg and returns a Server serving its connections on core
// (share one with the WebSocket handler and the HTTP API).
func New(cfg Config, core *session.Core) (*Server, error) {
	if core == nil {
		return nil, errors.New("tether: tcp: a session core is required")
	}
	if cfg.HelloTimeout < 0 {
		return nil, fmt.Errorf("tether: tcp: negative HelloTimeout %v", cfg.HelloTimeout)
	}
	if cfg.HelloTimeout == 0 {
		cfg.HelloTimeout = core.Config().PingTimeout
	}
	return &Server{cfg: cfg, core: core, stop: make(chan struct{})}, nil
}

// Start listens on Config.Addr with conn.Listen (keepalive,
// TCP_USER_TIMEOUT, recorded socket errors) and serves in the background
// until Stop.
func (s *Server) Start(ctx context.Context) error {
	if s.cfg.Addr == "" {
		return errors.New("tether: tcp: Config.Addr is required by Start")
	}
	ln, err := conn.Listen(ctx, s.cfg.Addr, s.cfg.KeepAlive)
	if err != nil {
		return err
	}
	if err := s.track(ln); err != nil {
		return err
	}
	s.serve.Go(func() { s.accept(ln) })
	return nil
}

// Addr is the address of the first listener, nil before Start or Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].Addr()
}

// Serve accepts connections on ln until Stop, and then returns
// ErrStopped. Use a listener from conn.Listen so that silent peers are
// noticed and resets told from timeouts.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.track(ln); err != nil {
		return err
	}
	s.serve.Add(1)
	defer s.serve.Done()
	return s.accept(ln)
}

func (s *Server) track(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		ln.Close()
		return ErrStopped
	}
	s.lns = append(s.lns, ln)
	return nil
}

func (s *Server) accept(ln net.Listener) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.stopped() {
				return ErrStopped
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and friends: back off and retry, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-s.stop:
			}
			continue
		}
		delay = 0
		s.conns.Add(1)
		go s.handle(nc)
	}
}

// StopAccepting closes the listeners; live connections go on. A graceful
// stop calls it first, then lets the Registry tell the clients, then Stop.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	lns := s.lns
	if !s.done {
		s.done = true
		close(s.stop)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}

func (s *Server) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// Stop stops accepting and waits for the accept loops and for every
// connection to have wound up; the connections themselves are ended by
// the Registry (Registry.Shutdown), not by Stop. It returns ctx.Err() if
// ctx ends first.
func (s *Server) Stop(ctx context.Context) error {
	s.StopAccepting()
	finished := make(chan struct{})
	go func() {
		s.serve.Wait()
		s.conns.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle reads the first frame, which may be a hello carrying a session
// key and a token, authenticates the connection, then hands it to the
// session core and returns; the core calls s.conns.Done once the
// connection has wound up. A connection refused (no token or a bad one)
// gets one error frame (unauthorized, token_expired) and is closed.
func (s *Server) handle(nc net.Conn) {
	started := false
	defer func() {
		if !started {
			s.conns.Done()
		}
	}()
	c := newTCPConn(nc, s.core.Config().MaxFrameSize)
	nc.SetReadDeadline(time.Now().Add(s.cfg.HelloTimeout))
	first, err := c.lr.ReadFrame()
	nc.SetReadDeadline(time.Time{})
	if err != nil {
		mode := conn.CloseGraceful
		if errors.Is(err, session.ErrFrameTooLarge) {
			// Nothing more is read of it (a graceful close would drain
			// the stream): the error frame, then a reset.
			nc.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
			c.WriteFrame(context.Background(), errorJSON("frame_too_large", "frame over the size limit"), true)
			mode = conn.CloseReset
		}
		conn.CloseConn(nc, mode)
		return
	}
	oi := registry.OpenInfo{Transport: registry.TransportTCP, Remote: nc.RemoteAddr().String(), Conn: nc}
	var token string
	if f, err := wire.DecodeClient(first); err == nil && f.Type == wire.TypeHello {
		if f.Session != "" && !wire.ValidKey(f.Session) {
			c.WriteFrame(context.Background(), errorJSON("bad_request", "session must be 1 to 255 bytes of printable ASCII"), true)
			conn.CloseConn(nc, conn.CloseGraceful)
			return
		}
		oi.SessionKey, token, first = f.Session, f.Token, nil
	} else {
		first = append([]byte(nil), first...) // the reader's buffer is reused
	}
	// The token travels in hello; without one (no hello, or a hello
	// without token) only an open server admits the connection.
	p, err := s.core.Authenticate(token)
	if err != nil {
		code, msg, _ := session.AuthCode(err)
		session.Refuse(c, code, msg)
		return
	}
	started = s.core.Start(context.Background(), c, p, oi, first, s.conns.Done) == nil
}

func errorJSON(code, msg string) []byte {
	return fmt.Appendf(nil, `{"type":"error","code":%q,"message":%q}`, code, msg)
}

// tcpConn frames a TCP connection as NDJSON.
type tcpConn struct {
	nc  net.Conn
	lr  *LineReader
	out framebuf.Batch // used by the writer goroutine only

	// tls is nc when it is a *tls.Conn, whose buffers Buffered looks in.
	tls *tls.Conn
	// mu orders Buffered's look into a tls.Conn (an expired read
	// deadline, then none) before CloseGracefully's drain, which sets a
	// deadline of its own.
	mu      sync.Mutex
	closing bool // guarded by mu; CloseGracefully began
}

func newTCPConn(nc net.Conn, limit int) *tcpConn {
	c := &tcpConn{nc: nc, lr: NewLineReader(nc, limit)}
	c.tls, _ = nc.(*tls.Conn)
	return c
}

func (c *tcpConn) ReadFrame(context.Context) ([]byte, error) { return c.lr.ReadFrame() }

// Buffered implements session.BufferedReader: the connection is served by
// readiness, holding no goroutine and no read buffer while idle. Over TLS
// it also reads once without waiting: a tls.Conn may hold a decrypted
// record, or records read from the socket and not yet decrypted, that the
// socket's readiness no longer shows.
func (c *tcpConn) Buffered() bool {
	if c.lr.Buffered() {
		return true
	}
	if c.tls == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false // the graceful close drains what is left
	}
	return c.lr.readNow(
		func() { c.tls.SetReadDeadline(time.Unix(1, 0)) },
		func() { c.tls.SetReadDeadline(time.Time{}) })
}

// WriteFrame adds a line to the batch, written in one write(2) when flush
// says nothing more is queued or it has grown to framebuf.FlushAt. The
// batch's buffer comes from a pool and goes back after each write, so an
// idle connection keeps none.
func (c *tcpConn) WriteFrame(_ context.Context, frame []byte, flush bool) error {
	if frame != nil {
		c.out.Write(frame)
		c.out.WriteByte('\n')
	}
	if flush || c.out.Len() >= framebuf.FlushAt {
		return c.out.Flush(c.nc)
	}
	return nil
}

func (c *tcpConn) CloseGracefully(conn.Reason) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	return conn.CloseConn(c.nc, conn.CloseGraceful)
}

func (c *tcpConn) Close() error                 { return c.nc.Close() }
func (c *tcpConn) NetConn() net.Conn            { return c.nc }
func (c *tcpConn) Reason(err error) conn.Reason { return session.ReasonOf(err) }
func (c *tcpConn) Format() session.Format       { return session.JSON }
