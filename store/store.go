package store

import (
	"context"
	"errors"
	"time"
)

// Cursor is an engine-minted position in one channel's log. It is opaque:
// compare cursors only for equality and hand them back to the engine that
// minted them.
type Cursor string

// Start is the cursor before the first message of every channel. Reading
// after Start reads from the oldest retained message and never reports a gap.
const Start Cursor = "0"

// Message is one entry of a channel's log.
type Message struct {
	// ID is the message's cursor: reading after it returns the messages
	// that follow it.
	ID Cursor
	// Data is the message payload, stored and returned byte for byte.
	Data []byte
	// Time is when the engine accepted the message.
	Time time.Time
}

// AppendOptions are the optional parts of an append.
type AppendOptions struct {
	// IdempotencyKey, when not empty, makes the append idempotent per
	// channel: a second append with the same key within the engine's dedup
	// window appends nothing and returns the first append's cursor with
	// Duplicate set.
	IdempotencyKey string

	// ExpectLatest, when not empty, makes the append conditional: it
	// happens only if the channel's Latest is this cursor at the moment
	// the engine orders the append (Start: the channel never had a
	// message). Otherwise Append appends nothing and returns ErrConflict.
	// Of any number of appends racing with the same expectation, at most
	// one succeeds. A duplicate idempotency key is answered as a duplicate
	// before the expectation is checked. A cursor the engine did not mint
	// gives ErrBadCursor.
	ExpectLatest Cursor
}

// AppendResult is what an append produced.
type AppendResult struct {
	// ID is the cursor of the appended message, or of the original message
	// when Duplicate is true.
	ID Cursor
	// Time is when the engine accepted the message (the original one when
	// Duplicate is true).
	Time time.Time
	// Duplicate reports that the idempotency key was seen within the dedup
	// window and nothing was appended.
	Duplicate bool
}

// ReadResult is a page of a channel's log.
type ReadResult struct {
	// Messages are the messages after the requested cursor, oldest first,
	// at most the requested limit.
	Messages []Message
	// Next is the cursor to read after next time: the ID of the last
	// message returned, or the channel's Latest when none were. Without a
	// gap that is the requested cursor; when retention removed everything
	// after the requested cursor, it moves the reader past the loss, so
	// the gap is reported once.
	Next Cursor
	// Gap reports that retention removed messages between the requested
	// cursor and the first message returned: the reader missed them.
	Gap bool
	// Earliest is the cursor of the oldest retained message, set when Gap
	// is true (and otherwise when the engine knows it cheaply). It is the
	// zero Cursor when the channel holds no message.
	Earliest Cursor
}

// Bounds describes what a channel's log holds right now.
type Bounds struct {
	// Earliest is the cursor of the oldest retained message, or the zero
	// Cursor when the channel holds none.
	Earliest Cursor
	// Latest is the cursor of the newest message ever appended, or Start
	// when there has been none. Reading after Latest returns only messages
	// appended later.
	Latest Cursor
}

// DefaultDedupWindow is how long an engine remembers an idempotency key
// when its configuration gives no window.
const DefaultDedupWindow = 10 * time.Minute

// Retention bounds how much history a channel keeps. Zero fields mean no
// bound.
type Retention struct {
	// MaxAge drops messages older than this. Zero means keep forever.
	MaxAge time.Duration
	// MaxMessages keeps at most this many messages per channel, dropping
	// the oldest. Zero means no limit.
	MaxMessages int
}

// Store is an ordered, durable log of channels.
type Store interface {
	// Append adds data to the end of channel's log and returns once it is
	// durable. The channel is created on first append. If ctx is done
	// before the call, Append appends nothing and returns
	// context.Cause(ctx); if it ends while the append is under way, Append
	// returns context.Cause(ctx) and the append may or may not happen (an
	// idempotency key makes the retry safe).
	Append(ctx context.Context, channel string, data []byte, opts AppendOptions) (AppendResult, error)

	// Read returns up to limit messages after the cursor, oldest first;
	// limit must be at least 1. Reading never consumes: the same call
	// returns the same messages until retention removes them. A cursor the
	// engine did not mint gives ErrBadCursor; a cursor ahead of the
	// channel's latest gives ErrCursorAhead (or ErrBadCursor, from an
	// engine that can tell the cursor came from another store).
	Read(ctx context.Context, channel string, after Cursor, limit int) (ReadResult, error)

	// Bounds reports the channel's earliest and latest cursors.
	Bounds(ctx context.Context, channel string) (Bounds, error)

	// Wait blocks until a message is appended after the cursor, or ctx
	// ends (returning context.Cause(ctx)), or the store closes (returning
	// ErrClosed). It returns at once if the channel's Latest is already
	// after the cursor, even when retention has since removed what
	// followed it: the Read that follows reports the gap. It does not read
	// the message. Cursors are checked as by Read.
	Wait(ctx context.Context, channel string, after Cursor) error

	// Close releases the engine. Appends in flight finish or fail with
	// ErrClosed, and blocked Waits return ErrClosed; calls after Close,
	// Close included, return ErrClosed.
	Close() error
}

var (
	// ErrBadCursor means a cursor was not minted by this engine.
	ErrBadCursor = errors.New("tether: bad cursor")
	// ErrCursorAhead means a cursor lies past the channel's latest message:
	// it came from another server or from history this server lost.
	ErrCursorAhead = errors.New("tether: cursor is ahead of the channel")
	// ErrBadChannel means a channel name is not valid; see ValidChannel.
	ErrBadChannel = errors.New("tether: bad channel name")
	// ErrConflict means a conditional append (AppendOptions.ExpectLatest)
	// found the channel's latest cursor elsewhere: another append came
	// first. Nothing was appended.
	ErrConflict = errors.New("tether: channel moved past the expected cursor")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("tether: store closed")
	// ErrNoSpace means the engine refuses appends because its storage is
	// full or nearly so: the embedded engine keeps a reserve of free disk
	// space and refuses before the disk itself is full; the NATS engine
	// refuses when the stream or the servers' JetStream storage reached
	// its limit. It is answered at once, never after a wait. Reads, Bounds
	// and Waits go on. Appends resume by themselves once space returns;
	// until then the engine reports a degraded Health (see Healther).
	//
	// Normally nothing was appended. When the disk filled under the engine
	// itself rather than at the reserve, the append may or may not have
	// been made, as when its ctx ends: an idempotency key makes the retry
	// safe.
	ErrNoSpace = errors.New("tether: storage is full")
)

// Health is an engine's view of whether it can do its work.
type Health struct {
	// Degraded reports that the engine works only in part: it still
	// serves what Reason does not exclude.
	Degraded bool
	// ReadOnly reports that appends are refused (with ErrNoSpace) while
	// reads and waits go on. It implies Degraded.
	ReadOnly bool
	// Reason says why, for operators (logs, /healthz); empty when not
	// Degraded. Not meant to be parsed.
	Reason string
}

// Healther is implemented by engines that can tell their health. A caller
// with a Store that does not implement it assumes the zero Health (all
// well). Health must be cheap (no I/O: it reports state the engine keeps up
// to date by itself) and safe for concurrent use; it may be called after
// Close.
type Healther interface {
	Health() Health
}

// MaxChannelLen is the longest valid channel name, in bytes.
const MaxChannelLen = 128

// ValidChannel reports whether name is a valid channel name: 1 to
// MaxChannelLen bytes of ASCII letters, digits, '-', '_', '.' and ':',
// starting with a letter or digit. The set is narrow on purpose: names
// travel in URL paths, NATS subjects and storage keys unescaped.
func ValidChannel(name string) bool {
	if len(name) == 0 || len(name) > MaxChannelLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.' || c == ':'):
		default:
			return false
		}
	}
	return true
}
