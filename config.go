package tether

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/limits"
	"github.com/tether-run/tether/origin"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/httpapi"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
)

// Defaults of the settings that belong to the node itself. The settings of
// each part (HTTP, Session, Jobs, KeepAlive) have their defaults in that
// part's package, each defined once; cmd/tether's flags and README's
// configuration table are made from these constants.
const (
	// DefaultAddr is where the tether binary listens for HTTP. A Node
	// whose Config.Addr is empty does not listen: mount Handler instead.
	DefaultAddr = "127.0.0.1:8080"
	// DefaultDataDir is where the tether binary keeps the embedded store.
	DefaultDataDir = "tether-data"
	// DefaultNATSStream is the JetStream stream of the channels.
	DefaultNATSStream = "TETHER"
	// DefaultShutdownSpread is the window over which Shutdown spreads the
	// clients' reconnect hints.
	DefaultShutdownSpread = 5 * time.Second
	// DefaultShutdownGrace is how long the tether binary's stop waits for
	// clients to leave before it closes the rest.
	DefaultShutdownGrace = 30 * time.Second
	// DefaultAdmitTimeout bounds how long a connection that presents a
	// session key waits for its predecessor's cleanup.
	DefaultAdmitTimeout = 5 * time.Second
)

// Config holds a Node's settings: values only, no dependencies (those are
// Options to New). The zero value is a valid configuration: an embedded
// store in DefaultDataDir, no listener of its own (see Addr).
type Config struct {
	// Addr is the TCP address Start listens on for HTTP, with tether's own
	// listener (see Listen). Empty means Start does not listen for HTTP:
	// mount Handler on your own server. Port 0 picks a free port (see
	// Node.Addr).
	Addr string
	// TCPAddr is the address Start listens on for the framed protocol over
	// plain TCP (docs/protocol.md). Empty means off.
	TCPAddr string

	// DataDir holds the embedded engine's data. Empty means
	// DefaultDataDir. Unused with NATS or WithStore.
	DataDir string
	// DataReserve is the free space the embedded engine keeps on the
	// filesystem of DataDir: below it, publishes are refused at once with
	// 507 storage_full (reads go on) until space returns. Zero means
	// pebblestore.DefaultReserve; negative turns the check off.
	DataReserve int64
	// ChannelIdle is how long either engine keeps a channel's state in
	// memory after its last use while nobody waits on it; the next use
	// loads it again (Pebble: from disk; JetStream: from the stream). Zero
	// means the engine's default (pebblestore.DefaultChannelIdle,
	// natsstore.DefaultChannelIdle, both a minute); negative keeps the
	// state of every channel used.
	ChannelIdle time.Duration
	// NATS, when its URLs are set, puts channels and jobs on a NATS
	// JetStream cluster instead of the embedded engine: every node pointed
	// at the same cluster and stream serves the same channels.
	NATS NATSConfig
	// Retention bounds each channel's history. The zero value keeps
	// everything.
	Retention store.Retention
	// DedupWindow is how long an idempotency key is remembered. Zero means
	// store.DefaultDedupWindow.
	DedupWindow time.Duration

	// KeepAlive sets TCP keepalive and TCP_USER_TIMEOUT on the connections
	// of tether's own listeners: how fast a silent client is noticed. The
	// zero value notices one within 10 s (see conn.KeepAlive).
	KeepAlive conn.KeepAlive
	// HTTP tunes the HTTP API: long-poll waits, read limits, body size,
	// SSE heartbeat and retry.
	HTTP httpapi.Config
	// Session tunes every connection, whatever its transport: frame size,
	// requests in flight, queue bytes, slow-consumer lag, heartbeats, idle
	// timeout.
	Session session.Config
	// Jobs tunes the jobs service: heartbeat, lease, cancel and follow
	// grace.
	Jobs jobs.Config
	// Tokens turns access control on: with a Secret (HS256) or Keys
	// (RS256, ES256, EdDSA) every connection and request needs a token
	// (README, "Security"). The zero value runs open: anyone who reaches
	// the node may do anything but write job channels, which Start
	// refuses on a non-loopback address unless Insecure.
	Tokens auth.Config
	// Insecure lets Start listen on a non-loopback Addr or TCPAddr in open
	// mode. For a trusted network only.
	Insecure bool
	// AllowedOrigins are the browser origins (origin.NewMatcher:
	// "https://app.example.com", "https://*.example.com", "*") whose pages
	// may use the node cross-origin: CORS on every HTTP route, preflight
	// included, and the WebSocket Origin check, one list. Empty means
	// same-origin pages and non-browser clients only.
	AllowedOrigins []string
	// WSOriginPatterns is the old name of AllowedOrigins (flag
	// --ws-origin); its entries are added to AllowedOrigins. A bare host
	// pattern ("*.example.com") now means https only.
	WSOriginPatterns []string
	// AllowedHosts are the Host header values the node answers (DNS
	// rebinding defence): names or addresses, optionally with :port,
	// "*.example.com" for subdomains. Empty means origin.LoopbackHosts
	// when Addr is a loopback address, else any Host.
	AllowedHosts []string
	// TrustedProxies are the reverse proxies in front of the node: IP
	// addresses ("127.0.0.1") or CIDR prefixes ("10.0.0.0/8"). A request
	// whose peer is one of them comes from the address its
	// X-Forwarded-For names: the rightmost entry that is not itself a
	// trusted proxy. That address is the one GET /v1/connections, the logs
	// and the per-IP connection limit see (docs/deploy.md). Empty means
	// none: the peer is the client. The TCP transport has no headers and
	// always sees its peer.
	TrustedProxies []string
	// Limits bounds connections (in total, per user, per IP),
	// subscriptions (per connection, in total) and each user's publish
	// rate; zero fields take the limits package's defaults, but in open
	// mode the per-IP limit is off unless set (a benchmark or a local
	// development setup connects from one address; there are no users).
	// Its Registerer and Now are the Node's.
	Limits limits.Config
	// TLSCertFile and TLSKeyFile, both set, serve TLS on Addr and TCPAddr
	// with that certificate, which Node.ReloadTLS (SIGHUP in the tether
	// binary) reloads from the files without dropping connections. Under
	// TLS a long-poll's or SSE stream's departure is seen as net/http sees
	// it (see the package documentation), and the reset and discard close
	// modes act on the TLS connection as a plain close.
	TLSCertFile, TLSKeyFile string
	// AdmitTimeout bounds how long a connection that presents a session
	// key waits for its predecessor's cleanup. Zero means
	// DefaultAdmitTimeout.
	AdmitTimeout time.Duration
	// ShutdownSpread is the window over which Shutdown spreads the
	// reconnect hints it gives clients, so they do not all come back at
	// once. Zero means DefaultShutdownSpread; it is capped by half of what
	// is left of Shutdown's deadline.
	ShutdownSpread time.Duration
}

// NATSConfig puts the channels on a NATS JetStream cluster.
type NATSConfig struct {
	// URLs are the comma-separated nats:// URLs of the servers. Empty
	// means the embedded engine.
	URLs string
	// Stream is the JetStream stream holding every channel; every node of
	// one service uses the same. Empty means DefaultNATSStream.
	Stream string
	// Replicas is how many servers hold each message before a publish is
	// acknowledged. Zero means 3 on a JetStream cluster, else 1.
	Replicas int
}

// withDefaults checks c and fills in the node's own defaults; each part
// applies its own.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Retention.MaxAge < 0 || c.Retention.MaxMessages < 0:
		return c, errors.New("tether: retention must not be negative")
	case c.DedupWindow < 0:
		return c, fmt.Errorf("tether: negative DedupWindow %v", c.DedupWindow)
	case c.ShutdownSpread < 0 || c.AdmitTimeout < 0:
		return c, errors.New("tether: ShutdownSpread and AdmitTimeout must not be negative")
	case c.NATS.Replicas < 0:
		return c, fmt.Errorf("tether: negative NATS.Replicas %d", c.NATS.Replicas)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return c, errors.New("tether: TLSCertFile and TLSKeyFile go together")
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		return c, err
	}
	c.AllowedOrigins = append(slices.Clone(c.AllowedOrigins), c.WSOriginPatterns...)
	if len(c.AllowedHosts) == 0 && c.Addr != "" && loopback(c.Addr) {
		c.AllowedHosts = origin.LoopbackHosts
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.NATS.Stream == "" {
		c.NATS.Stream = DefaultNATSStream
	}
	if c.ShutdownSpread == 0 {
		c.ShutdownSpread = DefaultShutdownSpread
	}
	if c.AdmitTimeout == 0 {
		c.AdmitTimeout = DefaultAdmitTimeout
	}
	return c, nil
}

// loopback reports whether a listen address ("host:port") can be reached
// from this machine only: a loopback IP or "localhost". An empty host
// listens on every address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
