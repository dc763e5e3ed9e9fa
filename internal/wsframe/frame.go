package wsframe

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// Opcode is a frame's opcode (RFC 6455 §5.2).
type Opcode byte

// The opcodes of RFC 6455 §5.2; 0x3-0x7 and 0xB-0xF are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control frame's (RFC 6455 §5.5).
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

func (op Opcode) known() bool {
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return true
	}
	return false
}

// Close status codes (RFC 6455 §7.4.1) this package and package ws use.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseNoStatus        = 1005 // never sent: a close frame without a status
	CloseInvalidData     = 1007 // data inconsistent with its type (not UTF-8)
	ClosePolicyViolation = 1008
	CloseTooBig          = 1009
)

// MaxControl is the largest payload of a control frame (RFC 6455 §5.5).
const MaxControl = 125

// MaxHeader is the longest frame header: 2 bytes, a 64-bit length and a
// mask key.
const MaxHeader = 14

// Error is a violation of the protocol by the peer, and the close status
// that answers it (1002, 1007 or 1009).
type Error struct {
	Code int
	Msg  string // short: it goes in the close frame (at most 123 bytes)
}

func (e *Error) Error() string { return "websocket: " + e.Msg }

func protocolError(msg string) *Error { return &Error{Code: CloseProtocolError, Msg: msg} }

// ValidCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4): the codes defined for use in frames (1000-1003,
// 1007-1011, and 1012-1014 registered since with IANA), and 3000-4999
// for libraries and applications. 1004-1006 and 1015 are never sent.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClose reads the payload of a close frame (RFC 6455 §5.5.1): empty,
// or a status code and a UTF-8 reason. An empty payload is CloseNoStatus.
// A payload of one byte or with a code no peer may send is a protocol
// error (1002); a reason that is not UTF-8 is 1007.
func ParseClose(p []byte) (code int, reason string, err error) {
	switch {
	case len(p) == 0:
		return CloseNoStatus, "", nil
	case len(p) == 1:
		return 0, "", protocolError("a close frame of one byte")
	}
	code = int(binary.BigEndian.Uint16(p))
	if !ValidCloseCode(code) {
		return 0, "", protocolError("close status " + strconv.Itoa(code) + " may not be sent")
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", &Error{Code: CloseInvalidData, Msg: "a close reason that is not UTF-8"}
	}
	return code, string(p[2:]), nil
}

// AppendHeader appends the header of a final, unmasked frame of op with n
// payload bytes, as a server sends it: the length in 7 bits, or 126 and 16
// bits, or 127 and 64 bits, the shortest that holds it (RFC 6455 §5.2).
func AppendHeader(b []byte, op Opcode, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

// AppendControl appends a whole control frame of op; a payload over
// MaxControl bytes is cut there.
func AppendControl(b []byte, op Opcode, payload []byte) []byte {
	payload = payload[:min(len(payload), MaxControl)]
	return append(AppendHeader(b, op, len(payload)), payload...)
}

// AppendClose appends a close frame with status code and reason, cut to
// fit a control frame (at a rune boundary, so that it stays UTF-8).
// CloseNoStatus gives an empty close frame.
func AppendClose(b []byte, code int, reason string) []byte {
	if code == CloseNoStatus {
		return AppendHeader(b, OpClose, 0)
	}
	if len(reason) > MaxControl-2 {
		n := MaxControl - 2
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	b = AppendHeader(b, OpClose, 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

// unmask applies key to p, the whole payload of a frame (RFC 6455 §5.3),
// eight bytes at a time.
func unmask(key [4]byte, p []byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32)<<32 | uint64(k32)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k64)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
}
