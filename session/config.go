package session

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tether-run/tether/conn"
)

// Config holds the settings of a Core; its dependencies (store, registry,
// logger, extensions) are arguments of New. The zero value is valid: every
// zero field takes the default its doc names, an exported constant below.
type Config struct {
	// MaxFrameSize is the largest frame a client may send, in bytes. A
	// larger one gets a frame_too_large error frame and ends the connection
	// with protocol-error. Zero means DefaultMaxFrameSize (1 MiB).
	MaxFrameSize int
	// MaxInFlight bounds the requests of one connection being handled at
	// once; one more gets a too_many_requests error frame and the
	// connection goes on. Zero means DefaultMaxInFlight (64).
	MaxInFlight int
	// MaxSubscriptions bounds the subscriptions of one connection. Zero
	// means DefaultMaxSubscriptions (256).
	MaxSubscriptions int
	// QueueBytes bounds what waits to be written to one connection, in
	// bytes of frames, for each of its two lanes: messages (message and gap
	// frames), and control (replies, errors, pings). A subscription whose
	// next message does not fit stops reading its channel until there is
	// room (nothing is dropped; it goes on from its cursor); a request
	// whose reply does not fit waits, holding its in-flight slot. A frame
	// larger than the bound is queued alone. Zero means DefaultQueueBytes
	// (1 MiB).
	QueueBytes int
	// MaxLag ends a connection of any streaming transport (WebSocket, TCP,
	// SSE) with slow-consumer once the oldest message it has not been
	// written for that long: measured from the message's time, or from when
	// its subscription started if that is later (so a client replaying old
	// history gets MaxLag to catch up). Zero means DefaultMaxLag (30s);
	// negative disables (the kernel's TCP_USER_TIMEOUT or the heartbeat then
	// ends a client that stopped reading). This one setting replaces the
	// HTTP API's former SSEMaxLag (flag --sse-max-lag).
	//
	// A client that stopped reading (its TCP window closed, its kernel
	// still answering ours) is ended by MaxLag, not by TCP_USER_TIMEOUT
	// (conn.StallGuard keeps the kernel from aborting it) nor by the
	// heartbeat (it cannot read our pings, so PingTimeout waits while a
	// message is waiting for it). That holds on Linux >= 5.11 with
	// sockets from conn.Listen or *net.TCPConn; elsewhere the heartbeat
	// or the kernel may end such a client first.
	MaxLag time.Duration
	// ReadBatch is how many messages a subscription reads from the store
	// at once. Zero means DefaultReadBatch (100).
	ReadBatch int

	// PingInterval is how often the server sends a ping frame on WebSocket
	// and TCP. Zero means DefaultPingInterval (5s). At least 100ms.
	PingInterval time.Duration
	// PingTimeout ends a WebSocket or TCP connection with heartbeat-timeout
	// when no frame of any kind arrived for this long. Zero means
	// DefaultPingTimeout (10s). Must be above PingInterval. It waits while
	// the client is stalled with a message waiting (see MaxLag), and counts
	// afresh once the client reads again.
	PingTimeout time.Duration
	// BusyPeerTimeout is how long a peer whose kernel is still heard from
	// may leave our pings unanswered. A client starved of CPU answers late
	// while its kernel keeps acknowledging our data, and a server that is
	// behind may not have read a pong that has arrived: neither is a peer
	// gone. So when PingTimeout passes without a frame, the heartbeat asks
	// the kernel (TCP_INFO: the last data segment and the last ACK it
	// received) and ends the connection only if the peer was silent there
	// too for PingTimeout; a silent peer is still ended PingTimeout after
	// the last sign of life. Kernel evidence keeps a connection for at most
	// BusyPeerTimeout after its last frame: a peer whose kernel answers but
	// whose application never does (a hung process) ends then, with
	// heartbeat-timeout. Zero means DefaultBusyPeerTimeout (60s), or
	// PingTimeout if that is longer; negative
	// ignores the kernel (the heartbeat ends at PingTimeout). Needs the
	// socket's TCP_INFO, as MaxLag's stall detection does; elsewhere
	// PingTimeout alone decides.
	BusyPeerTimeout time.Duration
	// Proxies are the addresses of reverse proxies in front of the server
	// (tether.Config.TrustedProxies). A connection from one of them is a
	// client's only as far as the proxy relays it: the kernel's evidence
	// about the peer is the proxy's, which always answers, so the heartbeat
	// does not consult it there (BusyPeerTimeout does not apply) and a
	// silent client behind the proxy still ends PingTimeout after its last
	// frame. Nil: none.
	Proxies []netip.Prefix
	// IdleTimeout ends a WebSocket or TCP connection with idle-timeout when
	// no application data (requests, replies, messages; not pings or
	// pongs) went either way for this long. Zero means off.
	IdleTimeout time.Duration
	// IdleCloseMode is how an idle connection is closed. Empty means
	// conn.CloseReset: such peers are usually gone.
	IdleCloseMode conn.CloseMode
	// FlushTimeout bounds a graceful close: what is queued must be written
	// within it, else the connection is reset. Zero means
	// DefaultFlushTimeout (2s).
	FlushTimeout time.Duration
}

// Defaults of Config, applied in one place (withDefaults); flags and docs
// take them from here.
const (
	DefaultMaxFrameSize     = 1 << 20
	DefaultMaxInFlight      = 64
	DefaultMaxSubscriptions = 256
	DefaultQueueBytes       = 1 << 20
	DefaultMaxLag           = 30 * time.Second
	DefaultReadBatch        = 100
	DefaultPingInterval     = 5 * time.Second
	DefaultPingTimeout      = 10 * time.Second
	DefaultBusyPeerTimeout  = time.Minute
	DefaultFlushTimeout     = 2 * time.Second
)

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.MaxFrameSize < 0 || c.MaxInFlight < 0 || c.MaxSubscriptions < 0 || c.QueueBytes < 0 || c.ReadBatch < 0:
		return c, fmt.Errorf("tether: session: negative size or count in %+v", c)
	case c.PingInterval < 0 || c.PingTimeout < 0 || c.IdleTimeout < 0 || c.FlushTimeout < 0:
		return c, fmt.Errorf("tether: session: negative duration in %+v", c)
	}
	c.MaxFrameSize = or(c.MaxFrameSize, DefaultMaxFrameSize)
	c.MaxInFlight = or(c.MaxInFlight, DefaultMaxInFlight)
	c.MaxSubscriptions = or(c.MaxSubscriptions, DefaultMaxSubscriptions)
	c.QueueBytes = or(c.QueueBytes, DefaultQueueBytes)
	c.MaxLag = or(c.MaxLag, DefaultMaxLag)
	c.ReadBatch = or(c.ReadBatch, DefaultReadBatch)
	c.PingInterval = or(c.PingInterval, DefaultPingInterval)
	c.PingTimeout = or(c.PingTimeout, DefaultPingTimeout)
	if c.BusyPeerTimeout == 0 {
		c.BusyPeerTimeout = max(DefaultBusyPeerTimeout, c.PingTimeout)
	}
	c.FlushTimeout = or(c.FlushTimeout, DefaultFlushTimeout)
	c.IdleCloseMode = or(c.IdleCloseMode, conn.CloseReset)
	switch {
	case c.PingInterval < 100*time.Millisecond:
		return c, fmt.Errorf("tether: session: PingInterval %v is below 100ms", c.PingInterval)
	case c.PingTimeout <= c.PingInterval:
		return c, fmt.Errorf("tether: session: PingTimeout %v must exceed PingInterval %v", c.PingTimeout, c.PingInterval)
	case c.BusyPeerTimeout > 0 && c.BusyPeerTimeout < c.PingTimeout:
		return c, fmt.Errorf("tether: session: BusyPeerTimeout %v is below PingTimeout %v", c.BusyPeerTimeout, c.PingTimeout)
	case c.IdleCloseMode != conn.CloseGraceful && c.IdleCloseMode != conn.CloseReset && c.IdleCloseMode != conn.CloseDiscard:
		return c, fmt.Errorf("tether: session: unknown IdleCloseMode %q", c.IdleCloseMode)
	}
	return c, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
