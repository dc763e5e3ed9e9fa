package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tether-run/tether/wire"
)

var (
	// ErrClosed: the Client (or Conn) was closed.
	ErrClosed = errors.New("tether: client: closed")
	// ErrAlreadySubscribed: this client subscribes to the channel already.
	ErrAlreadySubscribed = errors.New("tether: client: already subscribed to the channel")
	// ErrPublishQueueFull: Config.MaxQueuedPublishes publishes wait already.
	ErrPublishQueueFull = errors.New("tether: client: publish queue full")
)

// State is the state of a Client's connection.
type State int

const (
	// StateConnecting: dialing, or waiting to dial again.
	StateConnecting State = iota + 1
	// StateConnected: a connection is up; subscriptions resume on it.
	StateConnected
	// StateDisconnected: the connection ended (StateChange.Reason says
	// why); the client reconnects after a backoff or the server's hint.
	StateDisconnected
	// StateClosed: Close was called, or the server refused a fixed
	// Config.Token for good (Reason unauthorized or token_expired; calls
	// then return that refusal). Final.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// StateChange is one transition of the connection's state.
type StateChange struct {
	State State
	// Transport is TransportWebSocket, TransportTCP, TransportSSE or
	// TransportLongPoll for
	// StateConnected and for the StateDisconnected that follows it.
	Transport string
	// Reason says why a connection ended or a dial failed:
	// "server-shutdown" (the server's notice; the client comes back after
	// its hint), "heartbeat-timeout" (the server was silent past
	// Config.HeartbeatTimeout), "connection-lost" (the socket failed or
	// closed), "dial-failed", "closed" (Close), or the code of the error
	// frame the server ended the connection with (e.g. "slow_consumer").
	Reason string
	// Err is the underlying error, if any.
	Err error
	// Retry is how long the client waits before dialing again, for
	// StateDisconnected.
	Retry time.Duration
}

// Stats are counters of a Client, for monitoring and tests.
type Stats struct {
	Reconnects      int // connections made after the first
	Duplicates      int // messages received twice and not delivered again
	DroppedOverflow int // events dropped from the unhandled-event buffer at its bounds
	DroppedExpired  int // events dropped from it at their TTL
	Held            int // events held now, waiting for a handler
	QueuedPublishes int // publishes waiting to be sent or answered
}

// Client is a connection to a tether server that stays up: it reconnects,
// resumes every subscription by cursor, and sends queued publishes, as
// the package doc describes. Create one with Dial; Close it.
type Client struct {
	cfg  Config
	ep   endpoint
	log  *slog.Logger
	disp *dispatcher

	// ctx ends when Close is called, or when the server refused the
	// client's token for good (halt); every request and dial of the client
	// derives from it. Its cause is ErrClosed or the refusal.
	ctx     context.Context
	stop    context.CancelFunc
	halt    context.CancelCauseFunc
	runDone chan struct{}  // closed when run returns
	wg      sync.WaitGroup // activate and pump goroutines

	mu        sync.Mutex
	state     State                    // guarded by mu
	link      link                     // guarded by mu; the live link, nil while there is none
	linkUp    chan struct{}            // guarded by mu; closed (and replaced) when a link comes up
	subs      map[string]*Subscription // guarded by mu
	handlers  map[string]Handler       // guarded by mu
	buf       *unhandled               // guarded by mu
	expiry    *time.Timer              // guarded by mu; fires at buf's next expiry
	outbox    map[string][]*pubItem    // guarded by mu; per channel, in order
	outboxN   int                      // guarded by mu; items in outbox
	pumping   map[string]link          // guarded by mu; channel -> the link its pump runs on
	stats     Stats                    // guarded by mu
	connected bool                     // guarded by mu; a link came up once
}

// Dial connects to a tether server and returns a Client that keeps the
// connection up until Close. rawURL is ws://host:port or wss://host:port
// (the path defaults to /v1/ws; http:// and https:// mean the same), or
// tcp://host:port for the TCP transport. Dial retries with backoff until
// the first connection is up or ctx ends (or the server refuses a fixed
// token for good: that refusal, a *wire.ErrorFrame, is the error); from
// then on the Client reconnects by itself.
func Dial(ctx context.Context, rawURL string, cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Session != "" && !wire.ValidKey(cfg.Session) {
		return nil, errors.New("tether: client: Config.Session must be 1 to 255 bytes of printable ASCII")
	}
	ep, err := parseURL(rawURL, cfg.HTTPURL)
	if err != nil {
		return nil, err
	}
	cctx, stop := context.WithCancelCause(context.Background())
	c := &Client{
		cfg: cfg, ep: ep, log: cfg.Logger, disp: newDispatcher(cfg.DeliveryQueue),
		ctx: cctx, stop: func() { stop(ErrClosed) }, halt: stop, runDone: make(chan struct{}),
		state: StateConnecting, linkUp: make(chan struct{}),
		subs: map[string]*Subscription{}, handlers: map[string]Handler{},
		buf:    newUnhandled(cfg.BufferMaxMessages, cfg.BufferMaxBytes, cfg.BufferTTL),
		outbox: map[string][]*pubItem{}, pumping: map[string]link{},
	}
	c.mu.Lock()
	up := c.linkUp
	c.mu.Unlock()
	go c.run()
	select {
	case <-up:
		return c, nil
	case <-cctx.Done(): // refused for good (refusedForGood)
		err := c.closedErr()
		c.Close()
		return nil, err
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("tether: client: not connected to %s: %w", rawURL, context.Cause(ctx))
	}
}

// State is the connection's state now.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Held = c.buf.len()
	s.QueuedPublishes = c.outboxN
	return s
}

// Close ends the connection (with bye), stops reconnecting, fails queued
// publishes with ErrClosed and stops delivery: events not yet handed to a
// handler are dropped (a subscription resumed later from the last cursor
// its handler saw loses nothing). It waits for the client's goroutines,
// except that it does not wait for a handler running at that moment (so
// that a handler may call it).
func (c *Client) Close() error {
	c.stop()
	<-c.runDone
	c.wg.Wait()
	c.mu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	for ch, q := range c.outbox {
		for _, it := range q {
			it.finishLocked(PublishResult{}, ErrClosed)
		}
		delete(c.outbox, ch)
	}
	c.outboxN = 0
	c.mu.Unlock()
	c.disp.close()
	if c.cfg.ownHTTP {
		c.cfg.HTTPClient.CloseIdleConnections()
	}
	return nil
}

// setState records a transition and reports it through OnState.
func (c *Client) setState(sc StateChange) {
	c.mu.Lock()
	c.state = sc.State
	c.mu.Unlock()
	c.log.Debug("state", "state", sc.State.String(), "transport", sc.Transport, "reason", sc.Reason, "err", sc.Err)
	if f := c.cfg.OnState; f != nil {
		c.disp.push(func() { f(sc) })
	}
}

// run keeps a link up until Close. It owns the links: it dials, attaches
// the link (resubscribing and restarting the outbox on it), waits for its
// end, and dials again after a backoff or the server's hint.
func (c *Client) run() {
	defer close(c.runDone)
	for failures := 0; ; {
		l, err := c.connect()
		if err != nil {
			if c.isClosing() {
				c.setState(StateChange{State: StateClosed, Reason: "closed"})
				return
			}
			if c.refusedForGood(err) {
				return
			}
			d := c.backoff(failures)
			failures++
			c.setState(StateChange{State: StateDisconnected, Reason: "dial-failed", Err: err, Retry: d})
			if !c.pause(d) {
				c.setState(StateChange{State: StateClosed, Reason: "closed"})
				return
			}
			c.setState(StateChange{State: StateConnecting})
			continue
		}
		up := time.Now()
		c.attach(l)
		select {
		case <-l.done():
		case <-c.ctx.Done():
			l.leave()
			c.detach(l)
			c.setState(StateChange{State: StateClosed, Transport: l.transport(), Reason: "closed"})
			return
		}
		c.detach(l)
		err = l.cause()
		if c.refusedForGood(err) {
			return
		}
		d, hinted := l.hint()
		if !hinted {
			if time.Since(up) > c.cfg.BackoffMax {
				failures = 0 // it was up a good while: this is a new outage
			}
			d = c.backoff(failures)
			failures++
		} else {
			failures = 0
		}
		c.setState(StateChange{State: StateDisconnected, Transport: l.transport(), Reason: reasonOf(err), Err: err, Retry: d})
		if !c.pause(d) {
			c.setState(StateChange{State: StateClosed, Reason: "closed"})
			return
		}
		c.setState(StateChange{State: StateConnecting})
	}
}

func (c *Client) isClosing() bool { return c.ctx.Err() != nil }

// closedErr is what calls on a closed client return: ErrClosed after
// Close, the server's refusal after refusedForGood.
func (c *Client) closedErr() error {
	if err := context.Cause(c.ctx); err != nil {
		return err
	}
	return ErrClosed
}

// refusedForGood ends the client when the server refused its token in a
// way no reconnect can mend: unauthorized or token_expired with a fixed
// Config.Token (a TokenSource gives a fresh token on the next dial, so
// then the client reconnects as after any end). Reconnecting with the
// same token would be refused again, forever, while publishes wait: the
// client is closed instead, with the refusal as the cause every waiting
// and later call returns, and a StateClosed whose Reason is the code.
func (c *Client) refusedForGood(err error) bool {
	var ef *wire.ErrorFrame
	if c.cfg.TokenSource != nil || !errors.As(err, &ef) || ef.Code != wire.CodeUnauthorized && ef.Code != wire.CodeTokenExpired {
		return false
	}
	c.log.Warn("the server refused the client's token; closing (give Config.TokenSource to renew tokens)", "code", ef.Code, "err", err)
	c.halt(ef)
	c.mu.Lock()
	for ch, q := range c.outbox {
		for _, it := range q {
			it.finishLocked(PublishResult{}, ef)
		}
		delete(c.outbox, ch)
	}
	c.outboxN = 0
	c.mu.Unlock()
	c.setState(StateChange{State: StateClosed, Reason: string(ef.Code), Err: ef})
	return true
}

// backoff is the wait before reconnect attempt n+1: full jitter, a
// uniformly random time below min(BackoffMax, BackoffMin*2^n), so that
// clients cut off together do not come back in step.
func (c *Client) backoff(n int) time.Duration {
	d := min(c.cfg.BackoffMin<<min(n, 20), c.cfg.BackoffMax)
	return rand.N(d) + time.Millisecond
}

// pause waits d; false when the client is closing instead.
func (c *Client) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// connect dials the server: WebSocket or TCP, or, when the WebSocket
// upgrade is refused, the SSE fallback.
func (c *Client) connect() (link, error) {
	ctx, cancel := c.reqCtx()
	defer cancel()
	cc := ConnConfig{Session: c.cfg.Session, Token: c.cfg.Token, TokenSource: c.cfg.TokenSource, HeartbeatTimeout: c.cfg.HeartbeatTimeout, HTTPClient: c.cfg.HTTPClient}
	fl, err := newFrameLink(ctx, c.ep, cc, c)
	if err == nil {
		return fl, nil
	}
	if errors.Is(err, ErrUpgradeRefused) && !c.cfg.NoFallback && c.ep.http != "" {
		c.log.Info("WebSocket refused; falling back to SSE and HTTP", "err", err)
		sl, serr := newSSELink(ctx, c)
		if serr != nil {
			return nil, fmt.Errorf("%w; SSE fallback: %w", err, serr)
		}
		return sl, nil
	}
	return nil, err
}

// attach makes l the live link: subscriptions resume on it and the
// outbox is sent on it.
func (c *Client) attach(l link) {
	c.mu.Lock()
	c.link = l
	close(c.linkUp)
	c.linkUp = make(chan struct{})
	if c.connected {
		c.stats.Reconnects++
	}
	c.connected = true
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	c.setState(StateChange{State: StateConnected, Transport: l.transport()})
	for _, s := range subs {
		c.goActivate(l, s)
	}
	c.pumpAll(l)
}

// detach forgets l once it ended.
func (c *Client) detach(l link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link == l {
		c.link = nil
	}
	for _, s := range c.subs {
		if s.on == l {
			s.on = nil
		}
	}
}

// reqCtx bounds one try of a request, and ends when the client closes.
func (c *Client) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
}

// pauseOn waits d before a retry on l: false when l ended or the client
// is closing meanwhile.
func (c *Client) pauseOn(l link, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done():
		return false
	case <-c.ctx.Done():
		return false
	}
}
