package client

import (
	"fmt"
	"net/http"
)

// withToken returns a copy of hc whose requests carry "Authorization:
// Bearer token" (unless they set one), or hc itself when token is empty.
// The WebSocket handshake goes through it too.
func withToken(hc *http.Client, token string) *http.Client {
	if token == "" {
		return hc
	}
	return withSource(hc, token, nil)
}

// withSource is withToken whose token comes from src, asked per request
// (nil: token).
func withSource(hc *http.Client, token string, src TokenSource) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &bearer{base: base, token: token, src: src}
	return &c
}

type bearer struct {
	base  http.RoundTripper
	token string
	src   TokenSource
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		tok := b.token
		if b.src != nil {
			var err error
			if tok, err = b.src(r.Context()); err != nil {
				return nil, fmt.Errorf("tether: client: token: %w", err)
			}
		}
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return b.base.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// base transport.
func (b *bearer) CloseIdleConnections() {
	if c, ok := b.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
