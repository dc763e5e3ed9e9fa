package wire

import (
	"encoding/json"
	"time"
)

// Reply (type "reply") is the success answer to request ID. For subscribe,
// Cursor is where the subscription starts; for publish, the message's
// cursor, with Duplicate set for an idempotent repeat; other requests carry
// neither.
type Reply struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	OK        bool   `json:"ok"`
	Cursor    string `json:"cursor,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// ErrorFrame (type "error") reports that request ID failed, that the
// subscription of Channel failed (it is gone), or, with neither, why the
// server is ending the connection. Cursors, with code slow_consumer, holds
// the last cursor sent per channel.
//
// ErrorFrame is an error, so that a client can return it as is.
type ErrorFrame struct {
	Type    string            `json:"type"`
	ID      string            `json:"id,omitempty"`
	Code    Code              `json:"code"`
	Message string            `json:"message"`
	Channel string            `json:"channel,omitempty"`
	Cursors map[string]string `json:"cursors,omitempty"`
	// RetryAfterMS (rate_limited) is when the request may succeed again.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

func (e *ErrorFrame) Error() string {
	if e.Message == "" {
		return "tether: " + string(e.Code)
	}
	return "tether: " + string(e.Code) + ": " + e.Message
}

// Message (type "message") is a message of a subscribed channel: its
// cursor, its data, and when the server accepted it.
type Message struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Cursor  string          `json:"cursor"`
	Data    json.RawMessage `json:"data"`
	Time    time.Time       `json:"time"`
}

// Gap (type "gap") says retention removed messages after After that the
// subscription of Channel had not received; what remains follows, from
// Earliest.
type Gap struct {
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	After    string `json:"after"`
	Earliest string `json:"earliest"`
}

// Ping is a ping or a pong frame (Type tells which), either way: the
// server's heartbeat, a client's answer, a client's check and its answer.
type Ping struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Shutdown (type "shutdown"): the server is stopping. Send bye (or close),
// wait ReconnectAfterMS, reconnect and resume each channel from the last
// cursor received.
type Shutdown struct {
	Type             string `json:"type"`
	ReconnectAfterMS int64  `json:"reconnect_after_ms"`
}

// ReconnectAfter is the server's hint as a duration.
func (s Shutdown) ReconnectAfter() time.Duration {
	return time.Duration(s.ReconnectAfterMS) * time.Millisecond
}

// Presence (type "presence") tells a subscription that asked for it
// (ClientFrame.Presence) that a connection joined or left the channel.
type Presence struct {
	Type    string `json:"type,omitempty"`
	Channel string `json:"channel"`
	// Event is "join" or "leave".
	Event string `json:"event"`
	// Sub is the user id of the connection ("" in open mode).
	Sub string `json:"sub"`
	// Conn is the connection's id (as in GET /v1/connections).
	Conn      string `json:"conn"`
	Transport string `json:"transport"`
	// Reason (leave) is why: "unsubscribed", or the connection's end
	// reason (closed, reset, timeout, token-expired, ...).
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// Presence events.
const (
	PresenceJoin  = "join"
	PresenceLeave = "leave"
)
