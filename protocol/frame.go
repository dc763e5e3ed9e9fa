package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Request frame types (client to server). docs/protocol.md describes each.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePublish     = "publish"
	TypePing        = "ping"
	TypePong        = "pong"
	TypeHello       = "hello"
	TypeBye         = "bye"
)

// Server frame types.
const (
	TypeReply    = "reply"
	TypeError    = "error"
	TypeMessage  = "message"
	TypeGap      = "gap"
	TypeShutdown = "shutdown"
)

// MaxIDLen is the longest request id, in bytes.
const MaxIDLen = 128

// MaxKeyLen is the longest idempotency or session key, in bytes.
const MaxKeyLen = 255

// Frame is a client frame as decoded. Which fields matter depends on Type.
type Frame struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Channel        string          `json:"channel"`
	After          *string         `json:"after"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
	Session        string          `json:"session"`

	// Worker requests (worker.go).
	Worker      string          `json:"worker"`
	Types       []string        `json:"types"`
	Concurrency int             `json:"concurrency"`
	Jobs        map[string]int  `json:"jobs"`
	Job         string          `json:"job"`
	Attempt     int             `json:"attempt"`
	Result      json.RawMessage `json:"result"`
	Error       string          `json:"error"`
	Canceled    bool            `json:"canceled"`
}

var (
	// ErrBadFrame means a frame is not one JSON object: the stream cannot
	// be trusted any more (code bad_frame, the connection ends).
	ErrBadFrame = errors.New("tether: bad frame")
	// ErrBadField means a frame is a JSON object but a known field has the
	// wrong JSON type; the other fields, the id included, were decoded, so
	// the request can be answered (code bad_request).
	ErrBadField = errors.New("tether: bad field in frame")
)

// Decode parses one client frame. An unknown type or a missing field is
// not an error here: the Session answers it. Unknown fields are ignored, so
// clients may add their own.
func Decode(b []byte) (Frame, error) {
	var f Frame
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return Frame{}, fmt.Errorf("%w: not a JSON object", ErrBadFrame)
	}
	err := json.Unmarshal(b, &f)
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		// encoding/json keeps decoding after a type error, so f is
		// complete but for that field.
		return f, fmt.Errorf("%w: field %q: want a JSON %s", ErrBadField, te.Field, te.Type)
	}
	if err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return f, nil
}

// reply is the ok answer to a request.
type reply struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	OK        bool   `json:"ok"`
	Cursor    string `json:"cursor,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// errorFrame reports a failed request (ID set), a failed subscription
// (Channel set), or why the server is ending the connection.
type errorFrame struct {
	Type    string            `json:"type"`
	ID      string            `json:"id,omitempty"`
	Code    Code              `json:"code"`
	Message string            `json:"message"`
	Channel string            `json:"channel,omitempty"`
	Cursors map[string]string `json:"cursors,omitempty"`
}

type messageFrame struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Cursor  string          `json:"cursor"`
	Data    json.RawMessage `json:"data"`
	Time    time.Time       `json:"time"`
}

type gapFrame struct {
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	After    string `json:"after"`
	Earliest string `json:"earliest"`
}

type pingFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type shutdownFrame struct {
	Type             string `json:"type"`
	ReconnectAfterMS int64  `json:"reconnect_after_ms"`
}

// encode marshals a server frame. The frames are plain structs of strings,
// raw JSON that was validated on the way in, and times, so it cannot fail;
// a failure would be a bug.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("tether: protocol: encoding %T: %v", v, err))
	}
	return b
}

func errFrame(id string, code Code, msg string) []byte {
	return encode(errorFrame{Type: TypeError, ID: id, Code: code, Message: msg})
}

// validKey reports whether s is 1 to MaxKeyLen bytes of printable ASCII,
// the rule for idempotency and session keys.
func validKey(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidSessionKey reports whether s may be used as a session key: 1 to
// MaxKeyLen bytes of printable ASCII.
func ValidSessionKey(s string) bool { return validKey(s) }
