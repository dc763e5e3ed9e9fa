package client

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tether-run/tether/wire"
)

// link is one connection's worth of transport: a framed Conn (WebSocket
// or TCP), or the SSE fallback (a stream per subscription, HTTP for
// publishing). The Client keeps subscriptions, cursors and the outbox
// above it, so that a reconnect, whatever the transport, resumes them.
// Incoming events go to the Client's sink methods, in order per channel.
type link interface {
	transport() string
	// subscribe starts the channel after the cursor (nil: from now) and
	// returns the cursor it starts at.
	subscribe(ctx context.Context, channel string, after *string) (string, error)
	unsubscribe(ctx context.Context, channel string) error
	publish(ctx context.Context, channel string, data json.RawMessage, key string) (wire.Reply, error)
	done() <-chan struct{}
	// cause is why the link ended (see Conn.Err).
	cause() error
	hint() (time.Duration, bool)
	// leave closes the link, saying bye where the transport has it, and
	// waits for its goroutines.
	leave()
}

// sink receives what a link reads.
type sink interface {
	message(l link, m wire.Message)
	gap(l link, g wire.Gap)
	subFailed(l link, channel string, err error)
}

// frameLink is a link over a Conn.
type frameLink struct{ c *Conn }

func newFrameLink(ctx context.Context, e endpoint, cfg ConnConfig, s sink) (*frameLink, error) {
	l := &frameLink{}
	cfg.OnFrame = func(f any) {
		switch f := f.(type) {
		case wire.Message:
			s.message(l, f)
		case wire.Gap:
			s.gap(l, f)
		case wire.ErrorFrame:
			if f.Channel != "" {
				s.subFailed(l, f.Channel, &f)
			}
		}
	}
	c, err := dialConn(ctx, e, cfg)
	if err != nil {
		return nil, err
	}
	l.c = c
	return l, nil
}

func (l *frameLink) transport() string           { return l.c.Transport() }
func (l *frameLink) done() <-chan struct{}       { return l.c.Done() }
func (l *frameLink) cause() error                { return l.c.Err() }
func (l *frameLink) hint() (time.Duration, bool) { return l.c.ShutdownHint() }
func (l *frameLink) leave()                      { l.c.Bye() }

func (l *frameLink) subscribe(ctx context.Context, channel string, after *string) (string, error) {
	r, err := l.c.Request(ctx, wire.ClientFrame{Type: wire.TypeSubscribe, Channel: channel, After: after})
	return r.Cursor, err
}

func (l *frameLink) unsubscribe(ctx context.Context, channel string) error {
	_, err := l.c.Request(ctx, wire.ClientFrame{Type: wire.TypeUnsubscribe, Channel: channel})
	return err
}

func (l *frameLink) publish(ctx context.Context, channel string, data json.RawMessage, key string) (wire.Reply, error) {
	return l.c.Request(ctx, wire.ClientFrame{Type: wire.TypePublish, Channel: channel, Data: data, IdempotencyKey: key})
}

// reasonOf names why a link ended, for StateChange.Reason.
func reasonOf(err error) string {
	var ef *wire.ErrorFrame
	switch {
	case err == nil:
		return "closed"
	case errors.Is(err, ErrServerShutdown):
		return "server-shutdown"
	case errors.Is(err, ErrHeartbeatTimeout):
		return "heartbeat-timeout"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.As(err, &ef):
		return string(ef.Code)
	}
	return "connection-lost"
}
