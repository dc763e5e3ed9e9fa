package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/tether-run/tether/wire"
)

// TokenSource returns a token (a JWT) for a server with access control.
// It is called before each connection and, on a Conn, again before the
// token expires, to refresh the connection in place (docs/protocol.md,
// "Tokens"); a Client's HTTP requests call it each time, so it should
// return a cached token while that one is still fresh.
type TokenSource func(ctx context.Context) (string, error)

// refreshAt is when to replace token: after 80% of its remaining life,
// from its exp claim (read, not verified: the server verifies). The zero
// time when the token has no exp or is not a JWT.
func refreshAt(token string, now time.Time) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == 0 {
		return time.Time{}
	}
	left := time.Unix(c.Exp, 0).Sub(now)
	return now.Add(left * 4 / 5)
}

// maybeRefresh sends a refresh with a fresh token once the connection's
// token is due; called by the watchdog goroutine. A failure (the source's
// or the server's) is retried a heartbeat interval later; the server ends
// the connection with token_expired if none succeeds in time.
func (c *Conn) maybeRefresh() {
	at := c.refreshAt.Load()
	if at == 0 || c.cfg.TokenSource == nil || time.Now().UnixNano() < at {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.HeartbeatTimeout/2)
	defer cancel()
	next := time.Time{}
	tok, err := c.cfg.TokenSource(ctx)
	if err == nil {
		_, err = c.Request(ctx, wire.ClientFrame{Type: wire.TypeRefresh, Token: tok})
	}
	if err == nil {
		next = refreshAt(tok, time.Now())
	} else {
		next = time.Now().Add(c.cfg.HeartbeatTimeout / 2)
	}
	if next.IsZero() {
		c.refreshAt.Store(0)
		return
	}
	c.refreshAt.Store(next.UnixNano())
}
