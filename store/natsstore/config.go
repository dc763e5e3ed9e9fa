package natsstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tether-run/tether/store"
)

// Config configures a Store. The zero value of every field but one of URLs
// and Conn is a valid choice.
type Config struct {
	// URLs are the comma-separated nats:// URLs of the NATS servers, used
	// when Conn is nil. The store then owns the connection: it reconnects
	// for as long as the store is open and closes it in Close.
	URLs string

	// Conn is an existing connection to use instead of dialling URLs. Close
	// does not close it.
	Conn *nats.Conn

	// Stream is the JetStream stream that holds every channel. Zero means
	// "TETHER". Its subjects are "<Stream>.c.*". Every Store on the same
	// stream must be opened with the same Retention and DedupWindow: Open
	// writes them into the stream's configuration.
	Stream string

	// Replicas is how many servers hold each message; an append is
	// acknowledged once that many have it. Zero means 3 when the servers
	// run a JetStream cluster, else 1.
	Replicas int

	// Retention bounds every channel's history. MaxMessages becomes the
	// stream's MaxMsgsPerSubject; MaxAge is enforced by the store itself
	// (reads hide expired messages at once, a background trim deletes
	// them), because it must keep each channel's newest message: see the
	// package documentation. Zero fields mean no bound.
	Retention store.Retention

	// DedupWindow is how long an idempotency key is remembered: the
	// stream's Duplicates window. Zero means 10 minutes.
	DedupWindow time.Duration

	// Logger receives the store's log messages. Nil means they are
	// discarded.
	Logger *slog.Logger

	// ChannelIdle is how long the store keeps what it knows of a channel
	// (its newest sequence, its tail) after its last append, read or wait
	// while nobody waits on it; the next use learns it again from the
	// stream (an append naming a stale predecessor is refused once and
	// retried). Zero means DefaultChannelIdle; negative keeps every
	// channel used.
	ChannelIdle time.Duration
}

// DefaultChannelIdle is Config.ChannelIdle's default.
const DefaultChannelIdle = time.Minute

const (
	defaultStream   = "TETHER"
	clusterReplicas = 3
	maxReplicas     = 5
	maxTrimInterval = time.Second
	minTrimInterval = 10 * time.Millisecond
)

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Stream == "" {
		c.Stream = defaultStream
	}
	if c.ChannelIdle == 0 {
		c.ChannelIdle = DefaultChannelIdle
	}
	switch {
	case c.Conn == nil && c.URLs == "":
		return c, errors.New("tether: natsstore: Config.URLs or Config.Conn is required")
	case strings.ContainsAny(c.Stream, " \t\r\n.*>/\\") || len(c.Stream) > 64:
		return c, fmt.Errorf("tether: natsstore: invalid stream name %q", c.Stream)
	case c.Replicas < 0 || c.Replicas > maxReplicas:
		return c, fmt.Errorf("tether: natsstore: Replicas %d, want 0 to %d", c.Replicas, maxReplicas)
	case c.Retention.MaxAge < 0:
		return c, fmt.Errorf("tether: natsstore: negative Retention.MaxAge %v", c.Retention.MaxAge)
	case c.Retention.MaxMessages < 0:
		return c, fmt.Errorf("tether: natsstore: negative Retention.MaxMessages %d", c.Retention.MaxMessages)
	case c.DedupWindow < 0:
		return c, fmt.Errorf("tether: natsstore: negative DedupWindow %v", c.DedupWindow)
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = store.DefaultDedupWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// trimInterval is how often expired messages are deleted: MaxAge/4 capped
// at a second, like the embedded engine.
func (c Config) trimInterval() time.Duration {
	return max(min(c.Retention.MaxAge/4, maxTrimInterval), minTrimInterval)
}
