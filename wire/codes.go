package wire

// Code is a stable error code carried by an error frame (ErrorFrame.Code).
// docs/protocol.md, "Error codes", is the contract; clients may switch on
// them, and new codes may be added.
type Code string

// Answers to one request (ErrorFrame.ID set), or to a subscription that
// failed (ErrorFrame.Channel set); the connection goes on.
const (
	// CodeBadRequest: no id (or one longer than MaxIDLen), a field of the
	// wrong JSON type, hello after the first frame, a malformed worker
	// request (missing job, attempt < 1, bad worker id or types, a second
	// worker request).
	CodeBadRequest Code = "bad_request"
	// CodeUnknownType: the frame's type is not a request type; for a worker
	// request, this server runs no jobs.
	CodeUnknownType Code = "unknown_type"
	// CodeBadChannel: the channel name is not valid (see ValidChannel).
	CodeBadChannel Code = "bad_channel"
	// CodeBadCursor: after was not issued by this server.
	CodeBadCursor Code = "bad_cursor"
	// CodeCursorAhead: after lies past the channel's latest message;
	// resubscribe with after "0".
	CodeCursorAhead Code = "cursor_ahead"
	// CodeInvalidJSON: publish without data.
	CodeInvalidJSON Code = "invalid_json"
	// CodeBadIdempotencyKey: the idempotency key is too long or not
	// printable ASCII (see ValidKey).
	CodeBadIdempotencyKey Code = "bad_idempotency_key"
	// CodeAlreadySubscribed: subscribe to a channel this connection is
	// subscribed to already.
	CodeAlreadySubscribed Code = "already_subscribed"
	// CodeNotSubscribed: unsubscribe from a channel it is not subscribed to.
	CodeNotSubscribed Code = "not_subscribed"
	// CodeTooManySubscriptions: past the server's MaxSubscriptions (default
	// 256) on one connection.
	CodeTooManySubscriptions Code = "too_many_subscriptions"
	// CodeTooManyRequests: past the server's MaxInFlight (default 64)
	// requests in flight on one connection; retry once an answer arrived.
	CodeTooManyRequests Code = "too_many_requests"
	// CodeUnavailable: the server is stopping (also for a subscription whose
	// store closed, with Channel set, and, without an id, for a connection
	// that was not admitted). Retry on the next connection.
	CodeUnavailable Code = "unavailable"
	// CodeInternal: storage failed (logged on the server). Retry later.
	CodeInternal Code = "internal"
	// CodeNotWorker: a job.* or drain request on a connection that has not
	// made a successful worker request.
	CodeNotWorker Code = "not_worker"
	// CodeFenced: a job.* request names an attempt that is no longer the
	// job's current one, or a job that does not exist: drop the attempt,
	// do not retry.
	CodeFenced Code = "fenced"
	// CodeStorageFull: the server's storage is full (or keeps its space
	// reserve): appends are refused until space returns, reads go on.
	// Retry later.
	CodeStorageFull Code = "storage_full"
	// CodeUnauthorized: no token, or one that is not valid (signature,
	// algorithm, issuer, audience, claims). Sent without an id before the
	// server closes a connection that presented none or a bad one; with an
	// id, a refresh whose token is not valid.
	CodeUnauthorized Code = "unauthorized"
	// CodeTokenExpired: the token has expired. Without an id it ends the
	// connection (end reason token-expired): connect again with a fresh
	// token, or send refresh before the token expires.
	CodeTokenExpired Code = "token_expired"
	// CodeForbidden: the token does not allow the request (subscribe,
	// publish, a worker's job types), or a refresh for another sub. With
	// Channel set and no id: a subscription a refreshed token no longer
	// allows was ended.
	CodeForbidden Code = "forbidden"
	// CodeTooManyConnections: the server, the user or the address has as
	// many connections as its limit allows; sent without an id before the
	// connection is closed.
	CodeTooManyConnections Code = "too_many_connections"
	// CodeRateLimited: the user's publish rate is exceeded; the frame's
	// retry_after_ms says when to try again.
	CodeRateLimited Code = "rate_limited"
)

// Sent without an id just before the server ends the connection.
const (
	// CodeBadFrame: a frame is not a JSON object (end reason
	// protocol-error).
	CodeBadFrame Code = "bad_frame"
	// CodeFrameTooLarge: a frame over the size limit (protocol-error).
	CodeFrameTooLarge Code = "frame_too_large"
	// CodeInvalidUTF8: a frame is not valid UTF-8 (protocol-error; on
	// WebSocket the close status is 1007).
	CodeInvalidUTF8 Code = "invalid_utf8"
	// CodeSlowConsumer: the connection fell behind more than the server's
	// MaxLag; the frame carries Cursors, the last cursor sent per channel
	// (slow-consumer).
	CodeSlowConsumer Code = "slow_consumer"
	// CodeIdleTimeout: no application data for the server's IdleTimeout,
	// when its idle close mode is graceful (idle-timeout).
	CodeIdleTimeout Code = "idle_timeout"
	// CodeKicked: an operator closed the connection gracefully (kicked).
	CodeKicked Code = "kicked"
)

// Retryable reports whether a request refused with c may succeed if sent
// again unchanged, later or on the next connection: unavailable, internal,
// too_many_requests, storage_full and rate_limited. Every other code
// answers the request itself.
func (c Code) Retryable() bool {
	switch c {
	case CodeUnavailable, CodeInternal, CodeTooManyRequests, CodeStorageFull, CodeRateLimited:
		return true
	}
	return false
}
