package registry

import (
	"net"
	"time"

	"github.com/tether-run/tether/conn"
)

// This file is the contract of the connection lifecycle layer that every
// transport shares (long-poll, SSE, WebSocket, TCP): every connection has
// an id, a state, and exactly one end Reason, reported to hooks, logs and
// metrics. The Registry (registry.go) implements it.

// Transport names a kind of connection. Values are metric labels.
type Transport string

const (
	TransportLongPoll  Transport = "long-poll"
	TransportSSE       Transport = "sse"
	TransportWebSocket Transport = "websocket"
	TransportTCP       Transport = "tcp"
)

// State is where a connection is in its life.
type State string

const (
	StateOpen    State = "open"    // admitted and serving
	StateClosing State = "closing" // an end was decided; cleanup is running
	StateClosed  State = "closed"  // cleanup done; gone from the registry
)

// Peer is what a transport gives the Registry so that the Registry can act
// on the connection. Implementations must be safe for concurrent use, and
// every method must return promptly (no network round trips while holding
// registry locks: the Registry never calls them with a lock held).
type Peer interface {
	// Close ends the connection with mode and records reason as its end
	// reason, unless it has already ended (first reason wins). It returns
	// once the transport has acted on the socket; the transport then calls
	// Handle.End from its own goroutine.
	Close(mode conn.CloseMode, reason conn.Reason) error
	// NotifyShutdown tells the client, over its own transport, that the
	// server is going away and that it should reconnect after the given
	// delay (WebSocket/TCP: a shutdown frame; SSE: an event; long-poll: the
	// keepalive answer).
	NotifyShutdown(reconnectAfter time.Duration)
}

// Info describes one live connection (GET /v1/connections).
type Info struct {
	ID        string    `json:"id"`
	Transport Transport `json:"transport"`
	Remote    string    `json:"remote"`
	// Sub is the user id of the connection's token ("" in open mode).
	Sub        string    `json:"sub"`
	SessionKey string    `json:"session,omitempty"`
	State      State     `json:"state"`
	Channels   []string  `json:"channels"`
	Started    time.Time `json:"started"`
	// Age is derived from Started when the Info is taken.
	Age          time.Duration `json:"age_ns"`
	BytesIn      int64         `json:"bytes_in"`
	BytesOut     int64         `json:"bytes_out"`
	LastActivity time.Time     `json:"last_activity"`
}

// OpenInfo is what a transport knows when a connection starts.
type OpenInfo struct {
	Transport Transport
	Remote    string
	// Sub is the user id of the connection's token; "" in open mode.
	Sub string
	// SessionKey, when not empty, is the client's stable session key: the
	// Registry admits this connection only after the cleanup of the
	// previous connection with the same key and the same Sub has
	// completed. Keys are per user: a connection of another user with the
	// same key neither waits for this one nor makes it wait, so a key
	// cannot be squatted.
	SessionKey string
	// Conn is the raw connection, if the transport has one; CloseConn uses
	// it for the reset and discard modes.
	Conn net.Conn
}
