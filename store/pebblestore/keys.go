package pebblestore

import (
	"encoding/binary"
	"errors"

	"github.com/tether-run/tether/store"
)

// Key layout. Every key starts with a one-byte kind. Channel names never
// contain 0x00 (store.ValidChannel), so 0x00 ends a channel name wherever
// something follows it, and "a" and "ab" never share a prefix.
//
//	v                                  → format version (1 byte)
//	c <channel>                        → meta: first retained seq, last seq, last accept time
//	m <channel> 0x00 <seq:8>           → message: accept time (8) + data
//	i <channel> 0x00 <idempotency key> → seq (8) + accept time (8)
//	x <accept time:8> <channel> 0x00 <idempotency key> → empty; expiry index for i keys
//
// Integers are big-endian so that keys sort numerically; times are Unix
// nanoseconds, which are positive for any clock this code will meet.
const (
	kindMeta    = 'c'
	kindIdem    = 'i'
	kindMessage = 'm'
	kindExpiry  = 'x'
)

var versionKey = []byte{'v'}

// formatVersion is written to versionKey when a store is created; Open
// refuses a store written in another format.
const formatVersion = 1

var errCorrupt = errors.New("tether: pebblestore: corrupt record")

func metaKey(channel string) []byte {
	return append([]byte{kindMeta}, channel...)
}

// msgPrefix is the prefix every message key of channel starts with.
func msgPrefix(channel string) []byte {
	k := make([]byte, 0, len(channel)+2+8)
	k = append(k, kindMessage)
	k = append(k, channel...)
	return append(k, 0)
}

func msgKey(channel string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(msgPrefix(channel), seq)
}

// msgUpperBound is the smallest key after every message key of channel with
// a seq up to and including last.
func msgUpperBound(channel string, last uint64) []byte {
	if last == ^uint64(0) {
		k := msgPrefix(channel)
		k[len(k)-1] = 1
		return k
	}
	return msgKey(channel, last+1)
}

// seqOfMsgKey returns the seq at the end of a message key.
func seqOfMsgKey(k []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

func idemKey(channel, key string) []byte {
	k := make([]byte, 0, 2+len(channel)+len(key))
	k = append(k, kindIdem)
	k = append(k, channel...)
	k = append(k, 0)
	return append(k, key...)
}

func expiryKey(nanos int64, channel, key string) []byte {
	k := make([]byte, 0, 10+len(channel)+len(key))
	k = append(k, kindExpiry)
	k = binary.BigEndian.AppendUint64(k, uint64(nanos))
	k = append(k, channel...)
	k = append(k, 0)
	return append(k, key...)
}

// expiryBound is the smallest expiry key for entries accepted at nanos.
func expiryBound(nanos int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindExpiry}, uint64(nanos))
}

// parseExpiryKey splits an expiry key into the accept time and the idem
// key it indexes.
func parseExpiryKey(k []byte) (nanos int64, idem []byte, err error) {
	if len(k) < 1+8+2 || k[0] != kindExpiry {
		return 0, nil, errCorrupt
	}
	nanos = int64(binary.BigEndian.Uint64(k[1:9]))
	idem = append([]byte{kindIdem}, k[9:]...)
	return nanos, idem, nil
}

// meta is a channel's persisted state. first > last means the channel holds
// no message; first == 1, last == 0 is a channel never appended to.
type meta struct {
	first, last uint64
	lastNanos   int64 // the committer's latest accept time when written
}

func (m meta) encode() []byte {
	b := make([]byte, 0, 24)
	b = binary.BigEndian.AppendUint64(b, m.first)
	b = binary.BigEndian.AppendUint64(b, m.last)
	return binary.BigEndian.AppendUint64(b, uint64(m.lastNanos))
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) != 24 {
		return meta{}, errCorrupt
	}
	return meta{
		first:     binary.BigEndian.Uint64(b),
		last:      binary.BigEndian.Uint64(b[8:]),
		lastNanos: int64(binary.BigEndian.Uint64(b[16:])),
	}, nil
}

func encodeMessage(nanos int64, data []byte) []byte {
	b := make([]byte, 0, 8+len(data))
	b = binary.BigEndian.AppendUint64(b, uint64(nanos))
	return append(b, data...)
}

// setMessageNanos sets the accept time of an encoded message value.
func setMessageNanos(value []byte, nanos int64) {
	binary.BigEndian.PutUint64(value, uint64(nanos))
}

// decodeMessage splits a message value; data aliases b.
func decodeMessage(b []byte) (nanos int64, data []byte, err error) {
	if len(b) < 8 {
		return 0, nil, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(b)), b[8:], nil
}

// idemEntry is what an idempotency key remembers: the message it produced.
type idemEntry struct {
	seq   uint64
	nanos int64
}

func (e idemEntry) encode() []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, e.seq)
	return binary.BigEndian.AppendUint64(b, uint64(e.nanos))
}

func decodeIdem(b []byte) (idemEntry, error) {
	if len(b) != 16 {
		return idemEntry{}, errCorrupt
	}
	return idemEntry{seq: binary.BigEndian.Uint64(b), nanos: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

// formatCursor mints the cursor of seq: its decimal form. Seq 0 is
// store.Start; minted cursors start at 1.
func formatCursor(seq uint64) store.Cursor { return store.SeqCursor(seq) }

// parseCursor is the inverse of formatCursor and accepts nothing else.
func parseCursor(c store.Cursor) (uint64, bool) { return store.ParseSeqCursor(c) }
