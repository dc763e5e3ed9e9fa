package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// PayloadSize is the size of every message body the harness publishes, in
// bytes, on every system (tether stores it as a JSON string, two quotes
// more).
const PayloadSize = 64

// payloadMark starts every payload: the sequence number follows it.
var payloadMark = []byte("#S")

// payload returns the message with sequence number seq (from 1), sent at
// t: "#S<12 digits>T<19 digits>" padded with dots to PayloadSize bytes. It
// is plain ASCII, needing no escape in JSON, SSE or socket.io frames.
func payload(seq int64, t time.Time) []byte {
	b := make([]byte, 0, PayloadSize)
	b = fmt.Appendf(b, "#S%012dT%019d", seq, t.UnixNano())
	for len(b) < PayloadSize {
		b = append(b, '.')
	}
	return b
}

// parsePayload finds a payload in a received frame or event, in whatever
// wrapping the system adds, and returns its sequence number and send time.
func parsePayload(frame []byte) (seq int64, sent time.Time, ok bool) {
	i := bytes.Index(frame, payloadMark)
	if i < 0 || len(frame) < i+2+12+1+19 {
		return 0, time.Time{}, false
	}
	p := frame[i+2:]
	seq, err := strconv.ParseInt(string(p[:12]), 10, 64)
	if err != nil || p[12] != 'T' {
		return 0, time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(p[13:32]), 10, 64)
	if err != nil {
		return 0, time.Time{}, false
	}
	return seq, time.Unix(0, ns), true
}

// seqCheck follows one subscriber's sequence numbers, which must go up by
// exactly one each time.
type seqCheck struct {
	last     int64 // last sequence number seen, 0 before the first
	got      int64 // messages counted (repeats excluded)
	missed   int64 // sequence numbers skipped over
	repeated int64 // messages at or below last
}

// see records seq and reports whether it was new.
func (c *seqCheck) see(seq int64) bool {
	switch {
	case seq <= c.last:
		c.repeated++
		return false
	case seq > c.last+1:
		c.missed += seq - c.last - 1
	}
	c.last = seq
	c.got++
	return true
}

// finish counts what never came, up to want.
func (c *seqCheck) finish(want int64) {
	if c.last < want {
		c.missed += want - c.last
		c.last = want
	}
}
