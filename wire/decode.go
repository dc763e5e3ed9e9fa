package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrBadFrame means a frame is not one JSON object: the stream cannot
	// be trusted after it (the server answers bad_frame and ends the
	// connection).
	ErrBadFrame = errors.New("tether: bad frame")
	// ErrBadField means a frame is a JSON object but a known field has the
	// wrong JSON type. Every other field, the id included, was decoded, so
	// the request can still be answered (bad_request).
	ErrBadField = errors.New("tether: bad field in frame")
	// ErrInvalidUTF8 means a frame is not valid UTF-8 (RFC 8259 §8.1
	// requires it of JSON; encoding/json accepts invalid bytes inside
	// strings and would store them). It wraps ErrBadFrame: the server
	// answers invalid_utf8 and ends the connection.
	ErrInvalidUTF8 = fmt.Errorf("%w: invalid UTF-8", ErrBadFrame)
)

// ValidJSON reports whether b is one JSON value in valid UTF-8: what
// json.Valid checks, and the UTF-8 that it does not check inside strings.
func ValidJSON(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

// Encode marshals a frame to its JSON, without a trailing newline (the TCP
// framer adds it). The frames are plain structs, so it fails only for
// Data, Result or Payload that is not valid JSON.
func Encode(frame any) ([]byte, error) {
	return json.Marshal(frame)
}

// Decode parses one frame into v (a pointer to one of this package's frame
// types) with the server's rules: ErrBadFrame when b is not one JSON
// object (ErrInvalidUTF8, which wraps it, when b is not UTF-8), ErrBadField when a known field has the wrong JSON type (v holds
// every other field). Leading and trailing white space is ignored; unknown
// fields are too.
func Decode(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrBadFrame)
	}
	if !utf8.Valid(b) {
		return ErrInvalidUTF8
	}
	err := json.Unmarshal(b, v)
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		// encoding/json goes on decoding after a type error, so v is
		// complete but for that field.
		return fmt.Errorf("%w: field %q: want a JSON %s", ErrBadField, te.Field, te.Type)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return nil
}

// DecodeClient parses a client frame (see Decode for the errors). An
// unknown type or a missing field is not an error here: the server answers
// it.
func DecodeClient(b []byte) (ClientFrame, error) {
	var f ClientFrame
	err := Decode(b, &f)
	if errors.Is(err, ErrBadFrame) {
		return ClientFrame{}, err
	}
	return f, err
}

// DecodeWorker parses a worker request (see Decode for the errors).
func DecodeWorker(b []byte) (WorkerRequest, error) {
	var f WorkerRequest
	err := Decode(b, &f)
	if errors.Is(err, ErrBadFrame) {
		return WorkerRequest{}, err
	}
	return f, err
}

// Head is what every frame starts with: its type and, for requests and
// their answers, pings and pongs, its id.
type Head struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Peek decodes only a frame's type and id, so that a reader can choose the
// type to decode the frame into (see Decode for the errors).
func Peek(b []byte) (Head, error) {
	var h Head
	err := Decode(b, &h)
	if errors.Is(err, ErrBadFrame) {
		return Head{}, err
	}
	return h, err
}

// Unknown is a server frame of a type this package does not know, as
// DecodeServer returns it. Clients ignore such frames: the protocol may add
// frame types.
type Unknown struct {
	Type string
	Raw  json.RawMessage
}

// serverUnion holds the fields of every frame the server sends; their
// names and JSON types do not clash.
type serverUnion struct {
	Type string `json:"type"`
	ID   string `json:"id"`

	OK        bool   `json:"ok"`
	Cursor    string `json:"cursor"`
	Duplicate bool   `json:"duplicate"`

	Code    Code              `json:"code"`
	Message string            `json:"message"`
	Channel string            `json:"channel"`
	Cursors map[string]string `json:"cursors"`

	RetryAfterMS int64  `json:"retry_after_ms"`
	Event        string `json:"event"`
	Sub          string `json:"sub"`
	Conn         string `json:"conn"`
	Transport    string `json:"transport"`

	Data     json.RawMessage `json:"data"`
	Time     time.Time       `json:"time"`
	After    string          `json:"after"`
	Earliest string          `json:"earliest"`

	ReconnectAfterMS int64 `json:"reconnect_after_ms"`

	Job        string          `json:"job"`
	JobType    string          `json:"job_type"`
	Payload    json.RawMessage `json:"payload"`
	Attempt    int             `json:"attempt"`
	Deadline   time.Time       `json:"deadline"`
	LeaseUntil time.Time       `json:"lease_until"`
	Reason     string          `json:"reason"`
}

// DecodeServer parses one frame the server sent, to a client or a worker,
// in one pass, and returns it by value as a Reply, ErrorFrame, Message,
// Gap, Ping (ping or pong), Shutdown, JobFrame or JobSignal (job.cancel or
// job.fenced); a frame of any other type comes back as Unknown. The errors
// are Decode's; with ErrBadField nothing is returned.
func DecodeServer(b []byte) (any, error) {
	var u serverUnion
	if err := Decode(b, &u); err != nil {
		return nil, err
	}
	switch u.Type {
	case TypeReply:
		return Reply{Type: u.Type, ID: u.ID, OK: u.OK, Cursor: u.Cursor, Duplicate: u.Duplicate}, nil
	case TypeError:
		return ErrorFrame{Type: u.Type, ID: u.ID, Code: u.Code, Message: u.Message, Channel: u.Channel, Cursors: u.Cursors, RetryAfterMS: u.RetryAfterMS}, nil
	case TypePresence:
		return Presence{Type: u.Type, Channel: u.Channel, Event: u.Event, Sub: u.Sub, Conn: u.Conn,
			Transport: u.Transport, Reason: u.Reason, Time: u.Time}, nil
	case TypeMessage:
		return Message{Type: u.Type, Channel: u.Channel, Cursor: u.Cursor, Data: u.Data, Time: u.Time}, nil
	case TypeGap:
		return Gap{Type: u.Type, Channel: u.Channel, After: u.After, Earliest: u.Earliest}, nil
	case TypePing, TypePong:
		return Ping{Type: u.Type, ID: u.ID}, nil
	case TypeShutdown:
		return Shutdown{Type: u.Type, ReconnectAfterMS: u.ReconnectAfterMS}, nil
	case TypeJob:
		return JobFrame{Type: u.Type, Job: u.Job, JobType: u.JobType, Payload: u.Payload, Attempt: u.Attempt,
			Deadline: u.Deadline, LeaseUntil: u.LeaseUntil, Channel: u.Channel}, nil
	case TypeJobCancel, TypeJobFenced:
		return JobSignal{Type: u.Type, Job: u.Job, Attempt: u.Attempt, Reason: u.Reason}, nil
	}
	return Unknown{Type: u.Type, Raw: append(json.RawMessage(nil), bytes.TrimSpace(b)...)}, nil
}

// Request is a frame a client or a worker sent, decoded for the server in
// one pass for client frames: the ClientFrame fields, and Worker when Type
// is a worker request type (IsWorkerRequest), which takes a second pass.
type Request struct {
	ClientFrame
	Worker *WorkerRequest
}

// DecodeRequest parses a frame sent to the server (see Decode for the
// errors; with ErrBadField the fields that decoded are set, Worker
// included). An unknown type or a missing field is not an error here: the
// server answers it.
func DecodeRequest(b []byte) (Request, error) {
	f, err := DecodeClient(b)
	if errors.Is(err, ErrBadFrame) {
		return Request{}, err
	}
	r := Request{ClientFrame: f}
	if IsWorkerRequest(f.Type) {
		w, werr := DecodeWorker(b)
		r.Worker = &w
		if err == nil {
			err = werr
		}
	}
	return r, err
}

// ClientMessage is err's text as a client may read it: without the
// "tether: " prefixes that the server's own errors carry (they name the
// package in logs, and mean nothing to a client).
func ClientMessage(err error) string {
	return strings.ReplaceAll(err.Error(), "tether: ", "")
}
