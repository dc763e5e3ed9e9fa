package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tether-run/tether/client"
	"github.com/tether-run/tether/wire"
)

// brief shortens a network error to its last step ("dial tcp
// 127.0.0.1:8080: connect: connection refused") for a progress line.
func brief(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return Explain(err)
}

// Explain turns an error of the Go client that carries the server's code
// (a *wire.ErrorFrame) into an *Error, whose message leads with the code;
// other errors are returned as they are.
func Explain(err error) error {
	var ef *wire.ErrorFrame
	if errors.As(err, &ef) {
		return &Error{Code: Printable(string(ef.Code), 64), Message: Printable(ef.Message, 500)}
	}
	return err
}

// fatal reports whether a failed dial will fail the same way again: the
// server refused it with a code that is not retryable (unauthorized,
// forbidden, bad_host, ...).
func fatal(err error) bool {
	var ef *wire.ErrorFrame
	return errors.As(err, &ef) && !ef.Code.Retryable()
}

// refusals are the codes with which the server refuses a client as such
// (its token, its Host, its Origin): no reconnect changes them.
var refusals = map[string]bool{
	"unauthorized": true, "token_expired": true, "forbidden": true, "bad_host": true, "forbidden_origin": true,
}

// preflight asks the server, over plain HTTP, whether it takes this
// client at all: GET /v1/jobs?limit=1 needs a valid token and no
// permission (it lists only the caller's own jobs). A refusal (a bad or
// expired token, a Host it does not serve) is returned with its code,
// where the Go client would fall back from the refused WebSocket to SSE
// and retry. A server that cannot be reached is not an error here: Dial
// waits for it.
func preflight(ctx context.Context, c Common) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a := &API{Base: c.Server, Token: c.Token, HTTP: &http.Client{}}
	var e *Error
	if err := a.Do(ctx, "GET", "/v1/jobs?limit=1", nil, nil); errors.As(err, &e) && refusals[e.Code] {
		return e
	}
	return nil
}

// Conn is the Go client connected for a command, with the progress of its
// reconnects on stderr.
type Conn struct {
	*client.Client
	server string
	stderr io.Writer

	// ended receives the refusal that ends the connection for good (a
	// token that expired): the client would reconnect and be refused.
	ended chan error

	mu      sync.Mutex
	dialing bool      // guarded by mu; Dial has not returned yet
	dialErr error     // guarded by mu; a fatal refusal while dialing
	prog    *Progress // guarded by mu; the line of a wait in progress
	closed  bool      // guarded by mu
}

// Dial connects the Go client to c.Server (WebSocket, falling back to SSE
// and HTTP as the client does), until ctx ends. While it waits for the
// server, and later while it reconnects, a progress line goes to stderr
// once the wait took more than a second. A refusal that cannot change
// (unauthorized, forbidden, ...) ends the wait at once with that error.
func Dial(ctx context.Context, c Common, stderr io.Writer) (*Conn, error) {
	if err := preflight(ctx, c); err != nil {
		return nil, err
	}
	conn := &Conn{server: c.Server, stderr: stderr, dialing: true, ended: make(chan error, 1)}
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conn.prog = StartProgress(stderr, "waiting for the server at "+c.Server)
	cl, err := client.Dial(dctx, c.Server, client.Config{
		Token:   c.Token,
		HTTPURL: c.Server,
		OnState: func(sc client.StateChange) { conn.state(sc, cancel) },
	})
	conn.mu.Lock()
	defer conn.mu.Unlock()
	conn.dialing = false
	if err != nil {
		conn.prog.Done()
		conn.prog = nil
		if conn.dialErr != nil {
			return nil, Explain(conn.dialErr)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("not connected to %s: %w", c.Server, context.Cause(ctx))
		}
		return nil, err
	}
	if conn.prog.Done() {
		fmt.Fprintf(stderr, "tether: connected to %s\n", c.Server)
	}
	conn.prog = nil
	conn.Client = cl
	return conn, nil
}

// state follows the connection's state changes (on the client's delivery
// goroutine).
func (c *Conn) state(sc client.StateChange, cancelDial context.CancelCauseFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.dialing {
		if (sc.State == client.StateDisconnected || sc.State == client.StateClosed) && sc.Err != nil {
			if fatal(sc.Err) {
				c.dialErr = sc.Err
				cancelDial(sc.Err)
			}
			if c.prog != nil {
				c.prog.Update(fmt.Sprintf("waiting for the server at %s: %v", c.server, brief(sc.Err)))
			}
		}
		return
	}
	switch sc.State {
	case client.StateClosed:
		// The client closes itself on a refusal of its fixed token that
		// no reconnect can mend (unauthorized, token_expired).
		if refusals[sc.Reason] {
			select {
			case c.ended <- Explain(sc.Err):
			default:
			}
		}
	case client.StateDisconnected:
		if refusals[sc.Reason] {
			select {
			case c.ended <- Explain(sc.Err):
			default:
			}
		}
		msg := fmt.Sprintf("connection to %s lost (%s); reconnecting", c.server, sc.Reason)
		if sc.Reason == "dial-failed" && sc.Err != nil {
			msg = fmt.Sprintf("reconnecting to %s: %v", c.server, brief(sc.Err))
		}
		if c.prog == nil {
			c.prog = StartProgress(c.stderr, msg)
		} else {
			c.prog.Update(msg)
		}
	case client.StateConnected:
		if c.prog != nil && c.prog.Done() {
			fmt.Fprintf(c.stderr, "tether: reconnected to %s (%s)\n", c.server, sc.Transport)
		}
		c.prog = nil
	}
}

// Ended receives the server's refusal that ends the connection for good:
// a token that expired, or no longer valid.
func (c *Conn) Ended() <-chan error { return c.ended }

// Close closes the client; no progress line follows.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.prog != nil {
		c.prog.Done()
		c.prog = nil
	}
	c.mu.Unlock()
	return c.Client.Close()
}
