package conn

import (
	"errors"
	"fmt"
)

// Reason says how a watched request ended. It is stable and short, so it
// can be used as a metrics label.
type Reason string

const (
	// ReasonCompleted: the handler finished and the peer never left.
	ReasonCompleted Reason = "completed"
	// ReasonHalfClosed: the peer sent FIN after its request but kept
	// reading (it acknowledged data we sent after the FIN); the handler
	// finished and its response was handed to the kernel.
	ReasonHalfClosed Reason = "half-closed"
	// ReasonClosed: the peer fully closed: it sent FIN, and its kernel
	// answered data we sent afterwards with RST (RFC 9293 §3.10.7.4). An
	// RST after FIN while our data was in flight is reported as closed too:
	// the two cannot be told apart.
	ReasonClosed Reason = "closed"
	// ReasonReset: the peer sent RST without being provoked by our data
	// (SO_LINGER 0, a crashed process with unread data, a middlebox).
	ReasonReset Reason = "reset"
	// ReasonTimeout: TCP keepalive or TCP_USER_TIMEOUT gave up: the peer
	// went silent (cable pulled, NAT entry expired, host gone).
	ReasonTimeout Reason = "timeout"
	// ReasonShutdown: WatchConfig.Shutdown was done.
	ReasonShutdown Reason = "shutdown"
	// ReasonWriteFailed: a write to the peer failed for a reason the
	// other values do not cover (e.g. http.Server.WriteTimeout).
	ReasonWriteFailed Reason = "write-failed"
	// ReasonCanceled: net/http cancelled the request and the transport
	// cannot tell how the peer left (HTTP/2, no TCP_INFO), or the
	// cancellation came from the server side (BaseContext,
	// http.Server.ReadTimeout) while the peer was still connected.
	ReasonCanceled Reason = "canceled"

	// The reasons below end connections of the bidirectional transports
	// (WebSocket, TCP) or come from the server's own decisions.

	// ReasonIdleTimeout: no application data either way for the configured
	// idle time.
	ReasonIdleTimeout Reason = "idle-timeout"
	// ReasonHeartbeatTimeout: nothing (pong or any frame) arrived within
	// the heartbeat timeout.
	ReasonHeartbeatTimeout Reason = "heartbeat-timeout"
	// ReasonSlowConsumer: the client fell further behind its channels than
	// the configured lag; it resumes from its last delivered cursor.
	ReasonSlowConsumer Reason = "slow-consumer"
	// ReasonKicked: an operator or the application closed the connection
	// (registry.Registry.Close, POST /v1/connections/{id}/close).
	ReasonKicked Reason = "kicked"
	// ReasonProtocolError: the client broke the framed protocol (oversized
	// or malformed frame, too many requests in flight).
	ReasonProtocolError Reason = "protocol-error"
)

// Sentinel errors. A GoneError matches the one for its Reason under
// errors.Is; ErrShutdown is itself the cause on shutdown.
var (
	ErrClosed      = errors.New("tether: client closed the connection")
	ErrReset       = errors.New("tether: client reset the connection")
	ErrTimeout     = errors.New("tether: client stopped answering")
	ErrShutdown    = errors.New("tether: server is shutting down")
	ErrWriteFailed = errors.New("tether: write to client failed")

	// Sentinels for the ends the server decides on connections of the
	// bidirectional transports; they let ReasonOf classify a context that
	// a transport cancelled with one of them.
	ErrIdleTimeout      = errors.New("tether: connection idle too long")
	ErrHeartbeatTimeout = errors.New("tether: client missed its heartbeat")
	ErrSlowConsumer     = errors.New("tether: client fell too far behind")
	ErrKicked           = errors.New("tether: connection closed by the server")
	ErrProtocolError    = errors.New("tether: client broke the protocol")
)

var sentinels = map[Reason]error{
	ReasonClosed:      ErrClosed,
	ReasonReset:       ErrReset,
	ReasonTimeout:     ErrTimeout,
	ReasonShutdown:    ErrShutdown,
	ReasonWriteFailed: ErrWriteFailed,

	ReasonIdleTimeout:      ErrIdleTimeout,
	ReasonHeartbeatTimeout: ErrHeartbeatTimeout,
	ReasonSlowConsumer:     ErrSlowConsumer,
	ReasonKicked:           ErrKicked,
	ReasonProtocolError:    ErrProtocolError,
}

// GoneError is the context cause Watch sets when the client is gone.
// errors.Is(err, ErrReset) and friends match on Reason; Err is the
// underlying transport error when one is known (e.g. syscall.ECONNRESET,
// or net/http's cause for ReasonCanceled) and is reachable with
// errors.Is/As too.
type GoneError struct {
	Reason Reason
	Err    error
}

func (e *GoneError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("tether: client gone (%s)", e.Reason)
	}
	return fmt.Sprintf("tether: client gone (%s): %v", e.Reason, e.Err)
}

// Unwrap returns the underlying transport error.
func (e *GoneError) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel for e.Reason.
func (e *GoneError) Is(target error) bool {
	s, ok := sentinels[e.Reason]
	return ok && s == target
}

// ReasonOf classifies a context cause: "" for nil, the Reason of a
// GoneError or sentinel, and ReasonCanceled for anything else (a plain
// context.Canceled, or a cause some other code set).
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	if g, ok := errors.AsType[*GoneError](err); ok {
		return g.Reason
	}
	for r, s := range sentinels {
		if errors.Is(err, s) {
			return r
		}
	}
	return ReasonCanceled
}

func gone(r Reason, err error) *GoneError { return &GoneError{Reason: r, Err: err} }
