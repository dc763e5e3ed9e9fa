package worker

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tether-run/tether/client"
	"github.com/tether-run/tether/wire"
)

// ServerError is an error frame answering one of the worker's requests.
type ServerError struct {
	Code    string // stable code, e.g. "fenced" (docs/protocol.md; wire.Code* constants)
	Message string
}

func (e *ServerError) Error() string {
	return "tether: server refused: " + e.Code + ": " + e.Message
}

// Is makes errors.Is(err, ErrFenced) hold for a fenced refusal.
func (e *ServerError) Is(target error) bool {
	return target == ErrFenced && e.Code == string(wire.CodeFenced)
}

// link is one connection to tether: a client.Conn, which matches answers
// to requests, answers pings, closes itself when the server is silent
// past its heartbeat timeout, and answers a shutdown frame with bye and
// closes (its ShutdownHint then says when to come back).
type link struct {
	c *client.Conn
}

// dialLink connects to rawURL: ws:// or wss:// (the path defaults to
// /v1/ws), tcp://host:port or a bare host:port for TCP. Frames that are
// not answers (job, job.cancel, job.fenced, unanswered errors) go to
// handle, on the connection's reader goroutine.
func dialLink(ctx context.Context, rawURL, token string, src client.TokenSource, silence time.Duration, handle func(*link, any)) (*link, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "tcp://" + rawURL
	}
	var cur atomic.Pointer[link]
	c, err := client.DialConn(ctx, rawURL, client.ConnConfig{
		Token:            token,
		TokenSource:      src,
		HeartbeatTimeout: silence,
		OnFrame: func(f any) {
			if l := cur.Load(); l != nil {
				handle(l, f)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	l := &link{c: c}
	cur.Store(l)
	return l, nil
}

// done is closed once the connection has ended.
func (l *link) done() <-chan struct{} { return l.c.Done() }

// hint is the server's reconnect_after_ms, once it sent a shutdown frame.
func (l *link) hint() (time.Duration, bool) { return l.c.ShutdownHint() }

// err says why the connection ended.
func (l *link) err() error { return l.c.Err() }

// shut ends the connection at once.
func (l *link) shut() { l.c.Close() }

// bye says goodbye and closes.
func (l *link) bye() { l.c.Bye() }

// send writes one frame without waiting for an answer.
func (l *link) send(ctx context.Context, f wire.WorkerRequest) error {
	return l.c.Send(ctx, f)
}

// request sends a frame with a fresh id and waits for its answer: nil for
// a reply, a *ServerError for an error frame, errLinkDown when the
// connection ends first.
func (l *link) request(ctx context.Context, f wire.WorkerRequest) error {
	_, err := l.c.RequestWorker(ctx, f)
	if ef, ok := errors.AsType[*wire.ErrorFrame](err); ok {
		return &ServerError{Code: string(ef.Code), Message: ef.Message}
	}
	if errors.Is(err, client.ErrConnLost) {
		return errLinkDown
	}
	return err
}

// errLinkDown: the connection ended before the answer came.
var errLinkDown = errors.New("tether: worker: connection lost")
