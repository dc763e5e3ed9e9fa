package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// maxFrame bounds a frame read from the server: a job's payload is at most
// the server's frame limit (1 MiB by default), plus its envelope.
const maxFrame = 16 << 20

// frameConn is one connection to tether, framed: a WebSocket message per
// frame, or one NDJSON line per frame over TCP.
type frameConn interface {
	read(ctx context.Context) ([]byte, error)
	write(ctx context.Context, b []byte) error
	close() error
}

// dial connects to rawURL: ws:// or wss:// for WebSocket (the path
// defaults to /v1/ws), tcp://host:port or a bare host:port for TCP NDJSON.
func dial(ctx context.Context, rawURL string) (frameConn, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "tcp://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("tether: worker: bad URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "ws", "wss":
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/ws"
		}
		c, _, err := websocket.Dial(ctx, u.String(), nil)
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(maxFrame)
		return &wsConn{c: c}, nil
	case "tcp":
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(nc)
		sc.Buffer(make([]byte, 0, 64<<10), maxFrame)
		return &tcpConn{nc: nc, sc: sc}, nil
	}
	return nil, fmt.Errorf("tether: worker: URL scheme %q: want ws, wss or tcp", u.Scheme)
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
		if b := c.sc.Bytes(); len(strings.TrimSpace(string(b))) > 0 {
			return b, nil
		}
	}
	if err := c.sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("tether: worker: connection closed by the server")
}

func (c *tcpConn) write(ctx context.Context, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	c.nc.SetWriteDeadline(dl)
	_, err := c.nc.Write(append(b, '\n'))
	return err
}

func (c *tcpConn) close() error { return c.nc.Close() }

// inFrame is any frame the server sends, decoded; which fields matter
// depends on Type.
type inFrame struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	OK      bool   `json:"ok"`
	Code    string `json:"code"`
	Message string `json:"message"`

	Job        string          `json:"job"`
	JobType    string          `json:"job_type"`
	Payload    json.RawMessage `json:"payload"`
	Attempt    int             `json:"attempt"`
	Deadline   time.Time       `json:"deadline"`
	LeaseUntil time.Time       `json:"lease_until"`
	Channel    string          `json:"channel"`
	Reason     string          `json:"reason"`

	ReconnectAfterMS int64 `json:"reconnect_after_ms"`
}

// ServerError is an error frame answering one of the worker's requests.
type ServerError struct {
	Code    string // stable code, e.g. "fenced" (docs/protocol.md)
	Message string
}

func (e *ServerError) Error() string {
	return "tether: server refused: " + e.Code + ": " + e.Message
}

// Is makes errors.Is(err, ErrFenced) hold for a fenced refusal.
func (e *ServerError) Is(target error) bool { return target == ErrFenced && e.Code == "fenced" }

// errLinkDown: the connection ended before the answer came.
var errLinkDown = errors.New("tether: worker: connection lost")

// link is one connection to tether and the requests in flight on it. Its
// reader goroutine, started by newLink, is owned by the Worker's Run,
// which waits for done.
type link struct {
	fc   frameConn
	done chan struct{} // closed when the reader has returned
	err  error         // why; set before done is closed

	lastRecv atomic.Int64 // unix nanos
	nextID   atomic.Uint64
	hint     atomic.Int64 // reconnect_after_ms of a shutdown frame, +1; 0: none

	mu      sync.Mutex
	pending map[string]chan inFrame // guarded by mu; by request id
	closed  bool                    // guarded by mu
}

func newLink(fc frameConn, handle func(*link, inFrame)) *link {
	l := &link{fc: fc, done: make(chan struct{}), pending: map[string]chan inFrame{}}
	l.lastRecv.Store(time.Now().UnixNano())
	go l.readLoop(handle)
	return l
}

func (l *link) readLoop(handle func(*link, inFrame)) {
	defer close(l.done)
	for {
		b, err := l.fc.read(context.Background())
		if err != nil {
			l.shut(err)
			return
		}
		l.lastRecv.Store(time.Now().UnixNano())
		var f inFrame
		if err := json.Unmarshal(b, &f); err != nil {
			l.shut(fmt.Errorf("tether: worker: bad frame from server: %w", err))
			return
		}
		switch f.Type {
		case "reply", "error", "pong":
			if f.ID != "" && l.answer(f) {
				continue
			}
		case "ping":
			l.send(context.Background(), map[string]any{"type": "pong", "id": f.ID})
			continue
		}
		handle(l, f)
	}
}

// shut ends the link: pending requests fail with errLinkDown.
func (l *link) shut(err error) {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		l.err = err
		for id, ch := range l.pending {
			close(ch)
			delete(l.pending, id)
		}
	}
	l.mu.Unlock()
	l.fc.close()
}

func (l *link) answer(f inFrame) bool {
	l.mu.Lock()
	ch, ok := l.pending[f.ID]
	delete(l.pending, f.ID)
	l.mu.Unlock()
	if ok {
		ch <- f // buffered
	}
	return ok
}

// send writes one frame without waiting for an answer.
func (l *link) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.fc.write(ctx, b); err != nil {
		l.shut(err)
		return errLinkDown
	}
	return nil
}

// request sends a frame with a fresh id and waits for its answer: nil for
// a reply, a *ServerError for an error frame, errLinkDown when the
// connection ends first.
func (l *link) request(ctx context.Context, v map[string]any) error {
	id := "w" + strconv.FormatUint(l.nextID.Add(1), 10)
	v["id"] = id
	ch := make(chan inFrame, 1)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errLinkDown
	}
	l.pending[id] = ch
	l.mu.Unlock()
	if err := l.send(ctx, v); err != nil {
		return err
	}
	select {
	case f, ok := <-ch:
		if !ok {
			return errLinkDown
		}
		if f.Type == "error" {
			return &ServerError{Code: f.Code, Message: f.Message}
		}
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.pending, id)
		l.mu.Unlock()
		return ctx.Err()
	}
}
