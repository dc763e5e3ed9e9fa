package client

import (
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Defaults of Config, applied in Dial.
const (
	DefaultSSEHeartbeatTimeout = 35 * time.Second
	DefaultBackoffMin          = 100 * time.Millisecond
	DefaultBackoffMax          = 5 * time.Second
	DefaultMaxQueuedPublishes  = 1000
	DefaultRequestTimeout      = 30 * time.Second
)

// Config configures a Client. Every field's zero value picks the default
// its doc names.
type Config struct {
	// Session is a stable session key (1-255 bytes of printable ASCII)
	// presented on every connection: the server admits a reconnect only
	// once the previous connection's cleanup is done, and a job followed
	// by this client survives the reconnect within the follow grace.
	// Empty: none.
	Session string
	// Token is the token (a JWT) presented on every connection and
	// request of a server with access control: Authorization: Bearer on
	// HTTP and the WebSocket handshake, the hello frame on TCP. Empty:
	// none (an open server).
	Token string
	// TokenSource, when set, replaces Token: asked for each connection
	// and HTTP request, and for a fresh token before a connection's
	// expires (sent as a refresh; see ConnConfig.TokenSource).
	TokenSource TokenSource
	// HTTPURL is the base of the server's HTTP API (jobs, and the SSE
	// fallback), e.g. http://host:8080. Empty means the host of the URL
	// given to Dial (ws:// gives http://, wss:// https://); a tcp:// URL
	// has none, and then Jobs and the fallback are not available.
	HTTPURL string
	// HTTPClient makes the HTTP requests and the WebSocket handshake. Nil
	// means a client without an overall timeout (SSE streams last), the
	// default transport.
	HTTPClient *http.Client

	// HeartbeatTimeout: a connection on which the server sent nothing for
	// this long is taken for dead and replaced; after half of it in silence
	// the client pings. Zero means 10s (DefaultHeartbeatTimeout), the
	// bound the server holds its clients to.
	HeartbeatTimeout time.Duration
	// SSEHeartbeatTimeout is HeartbeatTimeout for the SSE fallback, whose
	// streams the server keeps alive only every --sse-heartbeat (15s by
	// default), and for the long-poll fallback (a poll waits 25s). Zero
	// means 35s.
	SSEHeartbeatTimeout time.Duration
	// NoFallback keeps the client on WebSocket (or TCP) when the upgrade
	// is refused, instead of falling back to SSE streams plus HTTP
	// publishing (or long-polls, when a probe stream shows SSE blocked or
	// buffered).
	NoFallback bool

	// BackoffMin and BackoffMax bound the wait between reconnect attempts:
	// attempt n waits a uniformly random time in [0, min(BackoffMax,
	// BackoffMin*2^n)) ("full jitter"). A server's shutdown hint replaces
	// it. Zero means 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
	// RequestTimeout bounds one try of a subscribe, unsubscribe or publish
	// request on a connection, and of an HTTP request. Zero means 30s.
	RequestTimeout time.Duration

	// BufferMaxMessages, BufferMaxBytes and BufferTTL bound the
	// unhandled-event buffer: events of subscribed channels that have no
	// handler yet. At a bound the oldest are dropped and reported
	// (OnDropped, and an EventDropped to the handler when it registers).
	// Zero means 1000 events, 4 MiB of data, 30s.
	BufferMaxMessages int
	BufferMaxBytes    int
	BufferTTL         time.Duration
	// DeliveryQueue bounds the events waiting for their handlers; when it
	// is full the client stops reading the connection until a handler
	// catches up. Zero means 4096.
	DeliveryQueue int
	// MaxQueuedPublishes bounds the publishes waiting to be sent or
	// answered, offline or not; one more fails at once with
	// ErrPublishQueueFull. Zero means 1000.
	MaxQueuedPublishes int

	// OnState is called on every change of the connection's state, on the
	// delivery goroutine (after the events queued before it). Nil: none.
	OnState func(StateChange)
	// OnDropped is called, on the delivery goroutine, when the client
	// drops events from its unhandled-event buffer. Nil: none (the
	// handler still gets EventDropped, and Stats counts them).
	OnDropped func(Dropped)
	// Logger receives the client's messages. Nil means discard.
	Logger *slog.Logger

	ownHTTP bool // HTTPClient was made by setDefaults
}

func (cfg *Config) setDefaults() error {
	if cfg.HeartbeatTimeout < 0 || cfg.SSEHeartbeatTimeout < 0 || cfg.BackoffMin < 0 || cfg.BackoffMax < 0 ||
		cfg.RequestTimeout < 0 || cfg.BufferMaxMessages < 0 || cfg.BufferMaxBytes < 0 || cfg.BufferTTL < 0 ||
		cfg.DeliveryQueue < 0 || cfg.MaxQueuedPublishes < 0 {
		return errors.New("tether: client: negative value in Config")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&cfg.SSEHeartbeatTimeout, DefaultSSEHeartbeatTimeout)
	def(&cfg.BackoffMin, DefaultBackoffMin)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	def(&cfg.RequestTimeout, DefaultRequestTimeout)
	def(&cfg.BufferTTL, DefaultBufferTTL)
	defInt(&cfg.BufferMaxMessages, DefaultBufferMaxMessages)
	defInt(&cfg.BufferMaxBytes, DefaultBufferMaxBytes)
	defInt(&cfg.DeliveryQueue, DefaultDeliveryQueue)
	defInt(&cfg.MaxQueuedPublishes, DefaultMaxQueuedPublishes)
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.HTTPClient == nil {
		// Its own transport, so that Close can close its idle connections.
		cfg.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		cfg.ownHTTP = true
	}
	if cfg.TokenSource != nil {
		cfg.HTTPClient = withSource(cfg.HTTPClient, "", cfg.TokenSource)
	} else {
		cfg.HTTPClient = withToken(cfg.HTTPClient, cfg.Token)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
