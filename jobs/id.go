package jobs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// idAlphabet is lowercase Crockford base32: no i, l, o, u, so ids read
// back unambiguously; every character is valid in a channel name and a URL.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// idLen is the length of a job id: 128 bits in base32.
const idLen = 26

// newID returns a time-ordered id: 48 bits of Unix milliseconds, then 80
// random bits, so ids sort by creation time to the millisecond.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return encodeID(b)
}

// keyID returns the id of the job created with an idempotency key: the
// same key of the same user always names the same job.
func keyID(sub, key string) string {
	in := "tether job key\x00" + key
	if sub != "" {
		in = "tether job key\x00" + sub + "\x00" + key // each user's keys are its own
	}
	sum := sha256.Sum256([]byte(in))
	var b [16]byte
	copy(b[:], sum[:16])
	return encodeID(b)
}

func encodeID(b [16]byte) string {
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var out [idLen]byte
	// 130 bits of output for 128 of input: the top character holds 3 bits.
	for i := idLen - 1; i >= 0; i-- {
		out[i] = idAlphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ValidID reports whether id has the shape of a job id.
func ValidID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') || c == 'i' || c == 'l' || c == 'o' || c == 'u' {
			return false
		}
	}
	return true
}

// IDFromChannel returns the job id of a job channel name, or false.
func IDFromChannel(channel string) (string, bool) {
	if len(channel) != len(ChannelPrefix)+idLen || channel[:len(ChannelPrefix)] != ChannelPrefix {
		return "", false
	}
	id := channel[len(ChannelPrefix):]
	return id, ValidID(id)
}
