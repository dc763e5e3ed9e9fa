package limits

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults. The per-IP limit counts a whole IPv6 /64 as one address (see
// IPKey); a NAT puts many users behind one IPv4 address, hence the
// generous default.
const (
	DefaultMaxConnections                = 250_000
	DefaultMaxConnectionsPerUser         = 1_000
	DefaultMaxConnectionsPerIP           = 10_000
	DefaultMaxSubscriptionsPerConnection = 256 // = protocol.DefaultMaxSubscriptions
	DefaultMaxSubscriptions              = 1_000_000
	DefaultPublishRate                   = 100.0 // per second per user
	DefaultPublishBurst                  = 200
	DefaultMaxRateKeys                   = 100_000
)

// Limit names: the label of tether_limit_* series and Error.Limit.
const (
	LimitConnections                = "connections"
	LimitConnectionsPerUser         = "connections_per_user"
	LimitConnectionsPerIP           = "connections_per_ip"
	LimitSubscriptionsPerConnection = "subscriptions_per_connection"
	LimitSubscriptions              = "subscriptions"
	LimitPublishRate                = "publish_rate"
)

// Error codes, stable like every tether error code.
const (
	CodeTooManyConnections   = "too_many_connections"   // 503 for the total, 429 per user or IP
	CodeTooManySubscriptions = "too_many_subscriptions" // 429; the same code protocol uses
	CodeRateLimited          = "rate_limited"           // 429 with Retry-After
)

// Config configures Limits. For every limit zero means its default and a
// negative value means no limit.
type Config struct {
	// MaxConnections bounds connections in total (all transports).
	MaxConnections int
	// MaxConnectionsPerUser bounds one sub's connections. Connections
	// without a user (open mode) are not counted per user.
	MaxConnectionsPerUser int
	// MaxConnectionsPerIP bounds the connections of one IP address (IPv6:
	// one /64).
	MaxConnectionsPerIP int
	// MaxSubscriptionsPerConnection bounds one connection's subscriptions.
	MaxSubscriptionsPerConnection int
	// MaxSubscriptions bounds subscriptions in total.
	MaxSubscriptions int
	// PublishRate is the publishes per second one user may sustain;
	// PublishBurst how many at once. Publishes without a user (open mode)
	// are not rate limited.
	PublishRate  float64
	PublishBurst int
	// MaxRateKeys bounds the token buckets kept (memory).
	MaxRateKeys int
	// Registerer receives the tether_limit_* metrics. Nil: not exported.
	Registerer prometheus.Registerer
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// ErrReleased is returned by Subscribe on a Lease already released.
var ErrReleased = errors.New("tether: connection lease already released")

// Error is a refusal by a limit.
type Error struct {
	Code       string
	Limit      string        // one of the Limit* names
	Max        int           // the limit that was reached (0 for the rate)
	RetryAfter time.Duration // for CodeRateLimited: when a token is there
}

func (e *Error) Error() string {
	if e.Code == CodeRateLimited {
		return fmt.Sprintf("tether: %s: publish rate exceeded; retry after %v", e.Code, e.RetryAfter)
	}
	return fmt.Sprintf("tether: %s: %s limit of %d reached", e.Code, e.Limit, e.Max)
}

// Status is the HTTP status of the refusal: 503 when the whole server is
// full (another node may have room), else 429.
func (e *Error) Status() int {
	if e.Limit == LimitConnections || e.Limit == LimitSubscriptions {
		return http.StatusServiceUnavailable
	}
	return http.StatusTooManyRequests
}

// RetryAfterHeader is the Retry-After value (RFC 9110 section 10.2.3):
// whole seconds, rounded up, at least 1; "" when the limit is not a
// rate.
func (e *Error) RetryAfterHeader() string {
	if e.Code != CodeRateLimited {
		return ""
	}
	s := int64((e.RetryAfter + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

// Limits counts connections and subscriptions against their bounds and
// rate-limits publishes. Safe for concurrent use: one mutex guards the
// counters (every operation is a few map updates under it).
type Limits struct {
	cfg  Config
	rate *RateLimiter // nil: no rate limit
	m    *metrics

	mu      sync.Mutex
	conns   int            // guarded by mu
	subs    int            // guarded by mu
	perUser map[string]int // guarded by mu; entries removed at zero
	perIP   map[string]int // guarded by mu; entries removed at zero
}

// New applies defaults, validates cfg and registers the metrics.
func New(cfg Config) (*Limits, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.MaxConnections, DefaultMaxConnections)
	def(&cfg.MaxConnectionsPerUser, DefaultMaxConnectionsPerUser)
	def(&cfg.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	def(&cfg.MaxSubscriptionsPerConnection, DefaultMaxSubscriptionsPerConnection)
	def(&cfg.MaxSubscriptions, DefaultMaxSubscriptions)
	def(&cfg.PublishBurst, DefaultPublishBurst)
	def(&cfg.MaxRateKeys, DefaultMaxRateKeys)
	if cfg.PublishRate == 0 {
		cfg.PublishRate = DefaultPublishRate
	}
	if cfg.PublishBurst < 0 || cfg.MaxRateKeys < 0 {
		return nil, fmt.Errorf("tether: negative PublishBurst or MaxRateKeys")
	}
	l := &Limits{cfg: cfg, perUser: map[string]int{}, perIP: map[string]int{}}
	if cfg.PublishRate > 0 {
		l.rate = NewRateLimiter(cfg.PublishRate, cfg.PublishBurst, cfg.MaxRateKeys, cfg.Now)
	}
	m, err := newMetrics(cfg, l)
	if err != nil {
		return nil, err
	}
	l.m = m
	return l, nil
}

// Lease is one admitted connection's hold on the limits. The session
// core takes it before the connection is served and releases it when the
// connection ends, whatever the reason.
type Lease struct {
	l        *Limits
	user, ip string
	subs     int  // guarded by l.mu
	released bool // guarded by l.mu
}

// Admit counts a new connection of user (a sub; "" in open mode) from ip
// (IPKey of the remote address). It refuses with *Error when a limit is
// reached, counting nothing.
func (l *Limits) Admit(user, ip string) (*Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(LimitConnections, l.cfg.MaxConnections, l.conns, CodeTooManyConnections); err != nil {
		return nil, err
	}
	if user != "" {
		if err := l.checkLocked(LimitConnectionsPerUser, l.cfg.MaxConnectionsPerUser, l.perUser[user], CodeTooManyConnections); err != nil {
			return nil, err
		}
	}
	if err := l.checkLocked(LimitConnectionsPerIP, l.cfg.MaxConnectionsPerIP, l.perIP[ip], CodeTooManyConnections); err != nil {
		return nil, err
	}
	l.conns++
	if user != "" {
		l.perUser[user]++
	}
	l.perIP[ip]++
	return &Lease{l: l, user: user, ip: ip}, nil
}

// checkLocked refuses when used has reached max (max < 0: no limit).
func (l *Limits) checkLocked(limit string, max, used int, code string) error {
	if max < 0 || used < max {
		return nil
	}
	l.m.refusals.WithLabelValues(limit).Inc()
	return &Error{Code: code, Limit: limit, Max: max}
}

// Release gives back the connection and all its subscriptions. It is
// idempotent, so every end path may call it.
func (s *Lease) Release() {
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	l.subs -= s.subs
	s.subs = 0
	l.conns--
	if s.user != "" {
		decr(l.perUser, s.user)
	}
	decr(l.perIP, s.ip)
}

func decr(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k) // bounded memory: only keys with live connections stay
		return
	}
	m[k]--
}

// Subscribe counts one more subscription of the connection, or refuses
// with *Error (CodeTooManySubscriptions). After Release it refuses.
func (s *Lease) Subscribe() error {
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.released {
		return ErrReleased
	}
	if err := l.checkLocked(LimitSubscriptionsPerConnection, l.cfg.MaxSubscriptionsPerConnection, s.subs, CodeTooManySubscriptions); err != nil {
		return err
	}
	if err := l.checkLocked(LimitSubscriptions, l.cfg.MaxSubscriptions, l.subs, CodeTooManySubscriptions); err != nil {
		return err
	}
	s.subs++
	l.subs++
	return nil
}

// Unsubscribe gives back one subscription. Extra calls are ignored.
func (s *Lease) Unsubscribe() {
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.released || s.subs == 0 {
		return
	}
	s.subs--
	l.subs--
}

// AllowPublish takes one publish from user's bucket, or refuses with
// *Error (CodeRateLimited, RetryAfter set). A publish without a user
// (open mode) is not limited.
func (l *Limits) AllowPublish(user string) error {
	if l.rate == nil || user == "" {
		return nil
	}
	if ok, wait := l.rate.Allow(user); !ok {
		l.m.refusals.WithLabelValues(LimitPublishRate).Inc()
		return &Error{Code: CodeRateLimited, Limit: LimitPublishRate, RetryAfter: wait}
	}
	return nil
}

// Usage is a snapshot of the counters, for tests and debugging.
type Usage struct {
	Connections, Subscriptions, Users, IPs, RateKeys int
}

// Usage returns the current counts.
func (l *Limits) Usage() Usage {
	l.mu.Lock()
	u := Usage{Connections: l.conns, Subscriptions: l.subs, Users: len(l.perUser), IPs: len(l.perIP)}
	l.mu.Unlock()
	if l.rate != nil {
		u.RateKeys = l.rate.Len()
	}
	return u
}

// IPKey is the per-IP key of a remote address ("host:port" as in
// http.Request.RemoteAddr, or a bare address): the IPv4 address, or the
// /64 prefix of an IPv6 address, since one host is commonly given a
// whole /64 and would otherwise have 2^64 "IPs". Unparsable input is
// returned as is.
func IPKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return remote
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
