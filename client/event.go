package client

import (
	"encoding/json"
	"time"
)

// EventKind tells what an Event reports.
type EventKind int

const (
	// EventMessage is a message of the channel: Cursor, Data, Time.
	EventMessage EventKind = iota + 1
	// EventGap: retention removed messages after GapAfter that this
	// subscription had not received; what remains follows, from
	// GapEarliest. Messages were lost on the server, never silently.
	EventGap
	// EventDropped: Dropped messages of the channel, held while it had no
	// handler, were dropped by the client (DropReason: DropOverflow or
	// DropExpired). It comes first when a handler registers, before the
	// held messages that remain.
	EventDropped
	// EventError: the subscription ended (Err says why, e.g. a
	// *wire.ErrorFrame with code cursor_ahead after the server lost its
	// data). Nothing follows for the channel unless it is subscribed again.
	EventError
)

func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventGap:
		return "gap"
	case EventDropped:
		return "dropped"
	case EventError:
		return "error"
	}
	return "unknown"
}

// Event is what a Handler receives for a channel: a message, a gap, the
// report of messages the client dropped, or the end of the subscription.
type Event struct {
	Kind    EventKind
	Channel string

	// EventMessage. Time is when the server accepted the message; it is
	// zero over the SSE fallback, whose events do not carry it.
	Cursor string
	Data   json.RawMessage
	Time   time.Time

	// EventGap.
	GapAfter, GapEarliest string

	// EventDropped.
	Dropped    int
	DropReason string

	// EventError.
	Err error
}

// Handler receives the events of one channel, in order, one at a time,
// on the Client's delivery goroutine (see the package doc).
type Handler func(Event)

// Drop reasons of EventDropped and Dropped.
const (
	DropOverflow = "overflow" // the unhandled-event buffer was full (count or bytes)
	DropExpired  = "expired"  // held longer than Config.BufferTTL
)

// Dropped reports messages the client dropped from its unhandled-event
// buffer (Config.OnDropped): Messages of Channel, Bytes of data in all,
// for Reason, the cursors of the first and last of them.
type Dropped struct {
	Channel     string
	Reason      string
	Messages    int
	Bytes       int
	FirstCursor string
	LastCursor  string
}
