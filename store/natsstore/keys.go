package natsstore

import (
	"encoding/base64"
	"strings"

	"github.com/tether-run/tether/store"
)

// Subjects and headers.
//
// A channel is one subject, "<Stream>.c.<token>", where the token is the
// channel name with every '.' replaced by '~'. '.' separates subject tokens,
// so "a.b" and "a..b" (both valid channel names) would otherwise become two
// tokens or an invalid subject; '~' is not in the channel alphabet
// (store.ValidChannel), so the mapping is one to one and every channel is
// exactly one token, which the stream's "<Stream>.c.*" filter matches.
const (
	// hdrPrev holds the stream sequence of the channel's previous message,
	// "0" for its first. It chains a channel's messages so that a reader
	// can tell that retention removed some: see Read.
	hdrPrev = "Tether-Prev"
	// prevAdjacent is the Tether-Prev of a message that follows its
	// channel's previous message directly in the stream: the second and
	// later messages of an atomic batch (sender.go), whose predecessors'
	// sequences are not known when they are sent.
	prevAdjacent = "="
	// hdrTime holds when the appending store accepted the message, in Unix
	// nanoseconds: the message's Time.
	hdrTime = "Tether-Time"
	// hdrNonce identifies the append that wrote the message (a NUID), so
	// that an append whose acknowledgement was lost can find its message.
	hdrNonce = "Tether-Nonce"
)

// NATS headers the store uses (nats-server's names).
const (
	hdrMsgID           = "Nats-Msg-Id"
	hdrExpectedSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectedLastID  = "Nats-Expected-Last-Msg-Id"
	hdrSequence        = "Nats-Sequence"
	hdrSubject         = "Nats-Subject"
	hdrStatus          = "Status"
)

// subjectPrefix is what every channel subject of stream starts with.
func subjectPrefix(stream string) string { return stream + ".c." }

// channelSubject returns the subject of a valid channel.
func channelSubject(prefix, channel string) string {
	return prefix + strings.ReplaceAll(channel, ".", "~")
}

// subjectChannel is the inverse of channelSubject; ok is false for a
// subject that is not a channel subject under prefix.
func subjectChannel(prefix, subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, prefix)
	if !ok || strings.Contains(tok, ".") {
		return "", false
	}
	ch := strings.ReplaceAll(tok, "~", ".")
	return ch, store.ValidChannel(ch)
}

// msgID is the Nats-Msg-Id of an idempotency key on a channel. JetStream
// deduplicates per stream, so the channel is part of the ID; '|' is not in
// the channel alphabet, so "a" + "|b|c" and "a|b" + "c" cannot collide. The
// key is base64url-encoded because a header value cannot hold CR or LF.
func msgID(channel, key string) string {
	return channel + "|" + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// formatCursor returns the cursor of a stream sequence.
func formatCursor(seq uint64) store.Cursor { return store.SeqCursor(seq) }

// parseCursor parses a cursor this engine minted: a stream sequence in
// canonical decimal, "0" being store.Start.
func parseCursor(c store.Cursor) (uint64, bool) { return store.ParseSeqCursor(c) }
