package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// maxFrame bounds a frame read from the server: a message or a job's
// payload is at most the server's frame limit (1 MiB by default), plus its
// envelope; a server configured higher needs at most this.
const maxFrame = 16 << 20

// Transport names, as StateChange.Transport and Conn.Transport report them.
const (
	TransportWebSocket = "websocket"
	TransportTCP       = "tcp"
	TransportSSE       = "sse"       // SSE streams plus HTTP publish: the fallback
	TransportLongPoll  = "long-poll" // long-polls plus HTTP publish: when SSE is blocked too
)

// ErrUpgradeRefused: the server (or a proxy in front of it) answered the
// WebSocket handshake with something other than 101 Switching Protocols.
// The Client then falls back to SSE and HTTP (Config.Fallback).
var ErrUpgradeRefused = errors.New("tether: client: WebSocket upgrade refused")

// endpoint is a parsed server URL.
type endpoint struct {
	scheme string // ws, wss or tcp
	frames string // ws(s)://host/v1/ws, or host:port for tcp
	http   string // http(s)://host, the HTTP API's base; "" for tcp without Config.HTTPURL
}

// parseURL accepts ws://, wss://, http://, https:// (the WebSocket path
// defaults to /v1/ws) and tcp://host:port.
func parseURL(raw, httpURL string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("tether: client: bad URL %q: %w", raw, err)
	}
	var e endpoint
	switch u.Scheme {
	case "ws", "http":
		e.scheme, e.http = "ws", "http://"+u.Host
	case "wss", "https":
		e.scheme, e.http = "wss", "https://"+u.Host
	case "tcp":
		e.scheme, e.frames = "tcp", u.Host
	default:
		return endpoint{}, fmt.Errorf("tether: client: URL scheme %q: want ws, wss, http, https or tcp", u.Scheme)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("tether: client: URL %q has no host", raw)
	}
	if e.scheme != "tcp" {
		p := u.Path
		if p == "" || p == "/" {
			p = "/v1/ws"
		}
		e.frames = e.scheme + "://" + u.Host + p
	}
	if httpURL != "" {
		e.http = strings.TrimRight(httpURL, "/")
	}
	return e, nil
}

// frameConn is one connection, framed: a WebSocket message per frame, or
// one NDJSON line per frame over TCP. read is called by one goroutine at a
// time; write may be called concurrently.
type frameConn interface {
	read(ctx context.Context) ([]byte, error)
	write(ctx context.Context, b []byte) error
	close() error
}

// dialFrames connects to e. A WebSocket handshake answered with anything
// but 101 is ErrUpgradeRefused.
func dialFrames(ctx context.Context, e endpoint, session string, hc *http.Client) (frameConn, error) {
	if e.scheme == "tcp" {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", e.frames)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(nc)
		sc.Buffer(make([]byte, 0, 64<<10), maxFrame)
		return &tcpConn{nc: nc, sc: sc}, nil
	}
	u := e.frames
	if session != "" {
		u += "?session=" + url.QueryEscape(session)
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("%w: %s", ErrUpgradeRefused, resp.Status)
		}
		return nil, err
	}
	c.SetReadLimit(maxFrame)
	return &wsConn{c: c}, nil
}

type wsConn struct{ c *websocket.Conn }

func (c *wsConn) read(ctx context.Context) ([]byte, error) {
	_, b, err := c.c.Read(ctx)
	return b, err
}

// write: coder/websocket serialises concurrent writers itself.
func (c *wsConn) write(ctx context.Context, b []byte) error {
	return c.c.Write(ctx, websocket.MessageText, b)
}

func (c *wsConn) close() error { return c.c.CloseNow() }

type tcpConn struct {
	nc net.Conn
	sc *bufio.Scanner // the reader goroutine's

	mu sync.Mutex // serialises writers
}

func (c *tcpConn) read(context.Context) ([]byte, error) {
	for c.sc.Scan() {
		if b := bytes.TrimSpace(c.sc.Bytes()); len(b) > 0 {
			return b, nil
		}
	}
	if err := c.sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("tether: client: connection closed by the server")
}

func (c *tcpConn) write(ctx context.Context, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	c.nc.SetWriteDeadline(dl)
	buf := make([]byte, 0, len(b)+1)
	_, err := c.nc.Write(append(append(buf, b...), '\n'))
	return err
}

func (c *tcpConn) close() error { return c.nc.Close() }
