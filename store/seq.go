package store

import "strconv"

// SeqCursor returns the cursor of a sequence number in canonical decimal,
// for engines whose cursors are sequence numbers (both of tether's are):
// 0 is Start.
func SeqCursor(seq uint64) Cursor {
	return Cursor(strconv.FormatUint(seq, 10))
}

// ParseSeqCursor is the inverse of SeqCursor and accepts nothing else:
// decimal digits only, no sign, no leading zeros, within uint64. Being
// strict means every position has one spelling, so equal positions are
// equal strings, as callers comparing cursors expect.
func ParseSeqCursor(c Cursor) (seq uint64, ok bool) {
	s := string(c)
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	if s[0] == '0' {
		return 0, len(s) == 1
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}
