package protocol

import (
	"errors"

	"github.com/tether-run/tether/store"
)

// Code is a stable error code carried by error frames. docs/protocol.md
// lists them; clients may switch on them.
type Code string

const (
	// Answers to one request; the connection goes on.
	CodeBadRequest           Code = "bad_request"            // missing id or field, field of the wrong JSON type
	CodeUnknownType          Code = "unknown_type"           // the frame's type is not a request type
	CodeBadChannel           Code = "bad_channel"            // channel name not valid
	CodeBadCursor            Code = "bad_cursor"             // after was not minted by this server
	CodeCursorAhead          Code = "cursor_ahead"           // after lies past the channel's latest message
	CodeInvalidJSON          Code = "invalid_json"           // publish without data
	CodeBadIdempotencyKey    Code = "bad_idempotency_key"    // too long or not printable ASCII
	CodeAlreadySubscribed    Code = "already_subscribed"     // subscribe to a channel already subscribed
	CodeNotSubscribed        Code = "not_subscribed"         // unsubscribe from a channel not subscribed
	CodeTooManySubscriptions Code = "too_many_subscriptions" // past Config.MaxSubscriptions
	CodeTooManyRequests      Code = "too_many_requests"      // past Config.MaxInFlight requests in flight
	CodeUnavailable          Code = "unavailable"            // the server is stopping
	CodeInternal             Code = "internal"               // storage failed
	CodeNotWorker            Code = "not_worker"             // a job request before a successful worker request
	CodeFenced               Code = "fenced"                 // the job's attempt is no longer current: drop it

	// Sent just before the server ends the connection.
	CodeBadFrame      Code = "bad_frame"       // not a JSON object: protocol-error
	CodeFrameTooLarge Code = "frame_too_large" // over Config.MaxFrameSize: protocol-error
	CodeSlowConsumer  Code = "slow_consumer"   // fell behind more than Config.MaxLag
	CodeIdleTimeout   Code = "idle_timeout"    // idle for Config.IdleTimeout (graceful close mode only)
	CodeKicked        Code = "kicked"          // an operator closed the connection (graceful mode only)
)

// storeCode maps a storage error to its wire code.
func storeCode(err error) (Code, string) {
	switch {
	case errors.Is(err, store.ErrBadChannel):
		return CodeBadChannel, "the channel name is not valid"
	case errors.Is(err, store.ErrBadCursor):
		return CodeBadCursor, "the cursor was not issued by this server"
	case errors.Is(err, store.ErrCursorAhead):
		return CodeCursorAhead, "the cursor lies past the channel's latest message; resume with after \"0\""
	case errors.Is(err, store.ErrClosed):
		return CodeUnavailable, "the server is stopping"
	default:
		return CodeInternal, "storage failed"
	}
}
