package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// ErrFrameTooLarge means a client frame exceeded Config.MaxFrameSize.
// Transports wrap it; the core answers frame_too_large and ends the
// connection with protocol-error.
var ErrFrameTooLarge = errors.New("tether: frame too large")

// Format turns the core's events into one transport's bytes. The events
// are wire values: wire.Message, wire.Gap, wire.Reply, wire.ErrorFrame,
// wire.Ping (ping and pong), wire.Shutdown, and whatever an Extension
// pushes. Encode returns nil for an event the transport does not carry
// (SSE has no replies). A Format must be comparable (a struct value or a
// pointer): pages shared between subscribers keep one encoding of their
// messages per Format.
type Format interface {
	Encode(ev any) []byte
}

// Transport is one connection as a framer hands it to the core. The core's
// writer calls WriteFrame from one goroutine; CloseGracefully and Close
// after the writer has stopped; NetConn and Reason at any time.
type Transport interface {
	// Format encodes the events this transport writes.
	Format() Format
	// WriteFrame sends one encoded event; flush false says another follows
	// at once, so the transport may buffer (and should: the frames of one
	// wake-up of the writer then leave in one write). A nil frame with
	// flush true writes out what is buffered and nothing else.
	WriteFrame(ctx context.Context, frame []byte, flush bool) error
	// CloseGracefully says goodbye the transport's way once everything
	// was written: a WebSocket close frame, TCP FIN, the end of an HTTP
	// response.
	CloseGracefully(reason conn.Reason) error
	// Close releases the connection at once.
	Close() error
	// NetConn is the raw connection, for conn.CloseConn's reset and
	// discard modes and the stall guard; nil if unknown.
	NetConn() net.Conn
	// Reason classifies an error of ReadFrame or WriteFrame: how the peer
	// left ("" if it cannot tell).
	Reason(err error) conn.Reason
}

// FramedTransport is a Transport that also reads client frames: WebSocket
// and TCP, which carry the request/reply protocol (docs/protocol.md).
type FramedTransport interface {
	Transport
	// ReadFrame returns the next client frame, valid until the next call.
	// It is called from one goroutine. A frame over the size limit is an
	// error wrapping ErrFrameTooLarge.
	ReadFrame(ctx context.Context) ([]byte, error)
}

// Aborter is an optional interface of a FramedTransport: how it ends a
// connection after a protocol error (a frame too large, not UTF-8, not
// JSON), once the error frame was flushed or abortFlush ran out. It must
// read nothing more from the peer, say goodbye within a short deadline
// (a WebSocket close frame with its status) and reset. Without it the
// core resets the connection.
type Aborter interface {
	Abort(reason conn.Reason) error
}

// Extension adds request types to the framed protocol from outside the
// core: the jobs' worker frames (package jobs/workerproto) plug in this
// way, so that the core does not import jobs.
type Extension interface {
	// RequestTypes lists the frame types the extension serves; each is a
	// request (it needs an id and gets one answer).
	RequestTypes() []string
	// Serve answers one request of those types. The core calls it on the
	// request's own goroutine, holding one of the connection's in-flight
	// slots; frame is the raw frame, the extension's to keep.
	Serve(s *Session, typ, id string, frame []byte)
	// Ended is called once per framed connection that made a request of
	// the extension's types, after every request returned and before the
	// connection is flushed and closed. departed says the peer really went
	// away (any end but the server's own shutdown).
	Ended(s *Session, departed bool)
}

// Follower is an optional interface of an Extension: it is told of every
// subscription, on every transport (jobs count the subscribers of a job's
// channel as its followers).
type Follower interface {
	// Follow is called when a subscription to channel starts. The stop it
	// returns (nil for none) is called once when the subscription ends;
	// departed as for Extension.Ended.
	Follow(channel string) (stop func(departed bool))
}

// Core serves the sessions of every transport of a node. It holds no
// per-connection state but the shared reads; one Core serves all of a
// node's long-polls, SSE streams, WebSocket and TCP connections.
type Core struct {
	cfg       Config
	store     store.Store
	reg       *registry.Registry
	log       *slog.Logger
	acc       Access
	presence  presence             // who is subscribed where, for presence
	exts      map[string]Extension // request type -> extension; read-only after New
	extList   []Extension
	followers []Follower
	reads     sharedReads // pages shared by the subscriptions of a channel
	parking   parking     // caught-up subscriptions, waiting one goroutine per channel and cursor
	now       func() time.Time
}

// New validates cfg and returns a Core reading and writing st, admitting
// every connection through reg, deciding permissions and limits with acc
// (the zero Access: open and unlimited). log may be nil (discard). Each of
// exts serves its request types; two extensions may not claim one type,
// nor a type of the core's.
func New(cfg Config, st store.Store, reg *registry.Registry, log *slog.Logger, acc Access, exts ...Extension) (*Core, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	switch {
	case st == nil:
		return nil, errors.New("tether: session: a store is required")
	case reg == nil:
		return nil, errors.New("tether: session: a registry is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Core{cfg: cfg, store: st, reg: reg, log: log, acc: acc, exts: map[string]Extension{}, now: time.Now}
	c.presence.chans = map[string]map[*Session]*presenceEntry{}
	for _, e := range exts {
		for _, t := range e.RequestTypes() {
			if _, dup := c.exts[t]; dup || coreType(t) {
				return nil, errors.New("tether: session: request type " + t + " claimed twice")
			}
			c.exts[t] = e
		}
		c.extList = append(c.extList, e)
		if f, ok := e.(Follower); ok {
			c.followers = append(c.followers, f)
		}
	}
	return c, nil
}

func coreType(t string) bool {
	switch t {
	case wire.TypeSubscribe, wire.TypeUnsubscribe, wire.TypePublish, wire.TypePing, wire.TypePong, wire.TypeHello, wire.TypeBye, wire.TypeRefresh:
		return true
	}
	return false
}

// Config returns the configuration in effect, defaults applied.
func (c *Core) Config() Config { return c.cfg }

// Store is the store the Core reads and writes.
func (c *Core) Store() store.Store { return c.store }

// Registry is the registry every session of the Core is open in.
func (c *Core) Registry() *registry.Registry { return c.reg }

// Logger is the Core's logger.
func (c *Core) Logger() *slog.Logger { return c.log }

// Serve runs one framed connection (WebSocket, TCP) until it ends: Start,
// then wait for its done. It returns Start's error.
func (c *Core) Serve(ctx context.Context, t FramedTransport, p *auth.Principal, oi registry.OpenInfo, first []byte) error {
	ended := make(chan struct{})
	if err := c.Start(ctx, t, p, oi, first, func() { close(ended) }); err != nil {
		return err
	}
	<-ended
	return nil
}

// Start serves one framed connection (WebSocket, TCP) and returns once it
// runs, without waiting for its end: it admits it against the limits and
// opens it in the Registry (p is who it acts for, from Authenticate; oi
// says what the transport knows; ctx bounds the admission wait only), then
// serves its frames on goroutines that run only while there is something
// to read or write (see the package doc, Concurrency). first, when not
// nil, is a frame the transport already read, served before any other.
//
// done, if not nil, is called once, on a goroutine of the session, after
// Handle.End has recorded the connection's one end reason and every
// goroutine of the session but that one has stopped; the transport counts
// its live connections with it. Start returns an error only when the
// connection was refused (a limit, or the Registry); the client has then
// been sent an error frame (too_many_connections, unavailable), the
// connection closed, and done is not called. The connection ends through
// the Registry (Close, Shutdown), its peer, the expiry of its token, or
// the core's own limits; it has no other stop.
func (c *Core) Start(ctx context.Context, t FramedTransport, p *auth.Principal, oi registry.OpenInfo, first []byte, done func()) error {
	s := newSession(ctx, c, t, framed)
	lease, err := c.admit(p, &oi)
	if err != nil {
		code, msg, _ := AuthCode(err)
		Refuse(t, code, msg)
		return err
	}
	s.p.Store(p)
	s.lease = lease
	s.done = done
	h, err := c.reg.Open(ctx, oi, s)
	if err != nil {
		s.releaseLease()
		Refuse(t, wire.CodeUnavailable, "not admitted: "+wire.ClientMessage(err))
		return err
	}
	s.runFramed(h, t, first)
	return nil
}

// Refuse sends a framed connection one error frame without an id and
// closes it: the connection was not admitted (no valid token, a limit,
// the server is stopping). It waits at most a second for the write.
func Refuse(t Transport, code wire.Code, msg string) {
	if nc := t.NetConn(); nc != nil {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
	}
	f := wire.ErrorFrame{Type: wire.TypeError, Code: code, Message: msg}
	t.WriteFrame(context.Background(), t.Format().Encode(f), true)
	reason := conn.ReasonProtocolError
	if code == wire.CodeUnavailable {
		reason = conn.ReasonShutdown
	}
	t.CloseGracefully(reason)
	t.Close()
}

// ReasonOf classifies a socket error that ended a read or a write, for
// transports' Reason: ECONNRESET is reset, ETIMEDOUT (keepalive or
// TCP_USER_TIMEOUT gave up) timeout, EOF and EPIPE closed. It returns ""
// for anything else; the core then reports closed for a read and
// write-failed for a write.
func ReasonOf(err error) conn.Reason {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return conn.ReasonReset
	case errors.Is(err, syscall.ETIMEDOUT):
		return conn.ReasonTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return conn.ReasonClosed
	}
	return ""
}

// StoreCode maps a storage error to its wire code and message.
func StoreCode(err error) (wire.Code, string) {
	switch {
	case errors.Is(err, store.ErrBadChannel):
		return wire.CodeBadChannel, "the channel name is not valid"
	case errors.Is(err, store.ErrBadCursor):
		return wire.CodeBadCursor, "the cursor was not issued by this server"
	case errors.Is(err, store.ErrCursorAhead):
		return wire.CodeCursorAhead, "the cursor lies past the channel's latest message; resume with after \"0\""
	case errors.Is(err, store.ErrClosed):
		return wire.CodeUnavailable, "the server is stopping"
	case errors.Is(err, store.ErrNoSpace):
		return wire.CodeStorageFull, "the server's storage is full: appends are refused until space returns; reads go on"
	default:
		return wire.CodeInternal, "storage failed"
	}
}

// JSON is the framed protocol's Format (WebSocket and TCP): every event is
// one JSON object, docs/protocol.md.
var JSON Format = jsonFormat{}

type jsonFormat struct{}

// Encode marshals an event. The events are plain structs of strings, raw
// JSON that was validated on the way in, and times, so it cannot fail; a
// failure would be a bug.
func (jsonFormat) Encode(ev any) []byte {
	b, err := wire.Encode(ev)
	if err != nil {
		panic("tether: session: encoding " + err.Error())
	}
	return b
}
