package protocol

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/store"
)

// Config configures an Engine. Store and Registry are required; every
// other field's zero value picks the default its doc names.
type Config struct {
	// Store holds the channels. Required.
	Store store.Store
	// Registry admits every connection and records its end. Required.
	Registry *registry.Registry
	// Logger receives the engine's own messages (the Registry logs every
	// end). Nil means discard.
	Logger *slog.Logger
	// Jobs, when set, serves worker connections (the worker request and
	// the job.* frames) and counts subscribers of job channels as the
	// jobs' followers. Nil means this node runs no jobs: worker requests
	// get unknown_type.
	Jobs *jobs.Service

	// MaxFrameSize is the largest frame a client may send, in bytes. A
	// larger one gets a frame_too_large error frame and ends the connection
	// with protocol-error. Zero means 1 MiB.
	MaxFrameSize int
	// MaxInFlight bounds the requests of one connection being handled at
	// once; one more gets a too_many_requests error frame and the
	// connection goes on. Zero means 64.
	MaxInFlight int
	// MaxSubscriptions bounds the subscriptions of one connection. Zero
	// means 256.
	MaxSubscriptions int
	// QueueBytes bounds what waits to be written to one connection, in
	// bytes of frames, for each of its two lanes: messages (message and gap
	// frames), and control (replies, errors, pings). A subscription whose
	// next message does not fit stops reading its channel until there is
	// room (nothing is dropped; it goes on from its cursor); a request
	// whose reply does not fit waits, holding its in-flight slot. A frame
	// larger than the bound is queued alone. Zero means 1 MiB.
	QueueBytes int
	// MaxLag ends a connection with slow-consumer once the oldest message
	// it has not been written for that long: measured from the message's
	// time, or from when its subscription started if that is later (so a
	// client replaying old history gets MaxLag to catch up). Zero means
	// 30s; negative disables.
	//
	// A client that stopped reading (its TCP window closed, its kernel
	// still answering ours) is ended by MaxLag, not by TCP_USER_TIMEOUT
	// (conn.StallGuard keeps the kernel from aborting it) nor by the
	// heartbeat (it cannot read our pings, so PingTimeout waits while a
	// message is waiting for it). That holds on Linux >= 5.11 with
	// sockets from conn.Listen or *net.TCPConn; elsewhere the heartbeat
	// may end such a client first.
	MaxLag time.Duration
	// ReadBatch is how many messages a subscription reads from the store
	// at once. Zero means 100.
	ReadBatch int

	// PingInterval is how often the server sends a ping frame. Zero means
	// 5s. At least 100ms.
	PingInterval time.Duration
	// PingTimeout ends a connection with heartbeat-timeout when no frame of
	// any kind arrived for this long. Zero means 10s (so a silent client is
	// noticed within 10s). Must be above PingInterval. It waits while the
	// client is stalled with a message waiting (see MaxLag), and counts
	// afresh once the client reads again.
	PingTimeout time.Duration
	// IdleTimeout ends a connection with idle-timeout when no application
	// data (requests, replies, messages; not pings or pongs) went either
	// way for this long. Zero means off.
	IdleTimeout time.Duration
	// IdleCloseMode is how an idle connection is closed. Empty means
	// conn.CloseReset: such peers are usually gone.
	IdleCloseMode conn.CloseMode
	// FlushTimeout bounds a graceful close: what is queued must be written
	// within it, else the connection is reset. Zero means 2s.
	FlushTimeout time.Duration

	// Now is the clock for lag and timeouts. Nil means time.Now.
	Now func() time.Time
}

// Defaults, applied in withDefaults.
const (
	DefaultMaxFrameSize     = 1 << 20
	DefaultMaxInFlight      = 64
	DefaultMaxSubscriptions = 256
	DefaultQueueBytes       = 1 << 20
	DefaultMaxLag           = 30 * time.Second
	DefaultReadBatch        = 100
	DefaultPingInterval     = 5 * time.Second
	DefaultPingTimeout      = 10 * time.Second
	DefaultFlushTimeout     = 2 * time.Second
)

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Store == nil:
		return c, errors.New("tether: protocol: Config.Store is required")
	case c.Registry == nil:
		return c, errors.New("tether: protocol: Config.Registry is required")
	case c.MaxFrameSize < 0 || c.MaxInFlight < 0 || c.MaxSubscriptions < 0 || c.QueueBytes < 0 || c.ReadBatch < 0:
		return c, fmt.Errorf("tether: protocol: negative size or count in %+v", c)
	case c.PingInterval < 0 || c.PingTimeout < 0 || c.IdleTimeout < 0 || c.FlushTimeout < 0:
		return c, errors.New("tether: protocol: negative duration")
	}
	c.MaxFrameSize = or(c.MaxFrameSize, DefaultMaxFrameSize)
	c.MaxInFlight = or(c.MaxInFlight, DefaultMaxInFlight)
	c.MaxSubscriptions = or(c.MaxSubscriptions, DefaultMaxSubscriptions)
	c.QueueBytes = or(c.QueueBytes, DefaultQueueBytes)
	c.MaxLag = or(c.MaxLag, DefaultMaxLag)
	c.ReadBatch = or(c.ReadBatch, DefaultReadBatch)
	c.PingInterval = or(c.PingInterval, DefaultPingInterval)
	c.PingTimeout = or(c.PingTimeout, DefaultPingTimeout)
	c.FlushTimeout = or(c.FlushTimeout, DefaultFlushTimeout)
	if c.IdleCloseMode == "" {
		c.IdleCloseMode = conn.CloseReset
	}
	switch {
	case c.PingInterval < 100*time.Millisecond:
		return c, fmt.Errorf("tether: protocol: PingInterval %v is below 100ms", c.PingInterval)
	case c.PingTimeout <= c.PingInterval:
		return c, fmt.Errorf("tether: protocol: PingTimeout %v must exceed PingInterval %v", c.PingTimeout, c.PingInterval)
	case c.IdleCloseMode != conn.CloseGraceful && c.IdleCloseMode != conn.CloseReset && c.IdleCloseMode != conn.CloseDiscard:
		return c, fmt.Errorf("tether: protocol: unknown IdleCloseMode %q", c.IdleCloseMode)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
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
