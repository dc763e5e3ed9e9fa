package wire

import "encoding/json"

// ClientFrame is a frame a client sends: a request (subscribe,
// unsubscribe, publish, ping, each with an ID), a pong answering the
// server's ping, hello or bye. Which fields matter depends on Type;
// encoding omits the empty ones.
type ClientFrame struct {
	// ID identifies a request (1 to MaxIDLen bytes); its answer carries it.
	// In a pong, the id of the server's ping.
	ID   string `json:"id,omitempty"`
	Type string `json:"type"`
	// Channel is what subscribe, unsubscribe and publish name.
	Channel string `json:"channel,omitempty"`
	// After is subscribe's start cursor: messages after it follow. "0"
	// reads from the oldest retained message; nil, only messages published
	// from now on. Cursor makes one.
	After *string `json:"after,omitempty"`
	// Data is publish's message, any JSON value. A publish without it is
	// refused (invalid_json); JSON null is a message.
	Data json.RawMessage `json:"data,omitempty"`
	// IdempotencyKey (publish, optional) makes a repeat within the server's
	// dedup window append nothing and answer the first cursor.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Session is hello's session key.
	Session string `json:"session,omitempty"`
	// Token is the connection's token: in hello (TCP), or the fresh one in
	// refresh. docs/protocol.md, "Tokens".
	Token string `json:"token,omitempty"`
	// Presence (subscribe, optional) asks for the channel's join and leave
	// events (type "presence") along with its messages.
	Presence bool `json:"presence,omitempty"`
}

// Cursor returns a pointer to c, for ClientFrame.After.
func Cursor(c string) *string { return &c }

// IsRequest reports whether a client frame of type t is a request, which
// needs an ID and gets exactly one answer.
func IsRequest(t string) bool {
	switch t {
	case TypeSubscribe, TypeUnsubscribe, TypePublish, TypePing, TypeRefresh:
		return true
	}
	return IsWorkerRequest(t)
}
