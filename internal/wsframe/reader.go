package wsframe

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"

	"github.com/tether-run/tether/internal/framebuf"
)

// Reader reads a client's frames from a stream (RFC 6455 §5): it checks
// each header before it reads the payload, joins fragmented messages, and
// returns control frames as they come, between fragments too.
//
// Every frame must be masked (§5.1), carry no reserved bit (§5.2: no
// extension is negotiated) and a known opcode; a control frame must be
// final and at most 125 bytes (§5.5); a continuation must continue a
// message and a new message may not start before the last one ended
// (§5.4). Each of these is an *Error with status 1002. A message whose
// fragments' lengths, added up, exceed the limit is an *Error with status
// 1009, told from the header that would take it past the limit, before a
// byte of that frame's payload is read.
//
// Errors are sticky: the stream is out of step after any of them, and the
// Reader gives back its buffer.
type Reader struct {
	src   io.Reader
	limit int64

	hdr  [MaxHeader]byte
	ctrl [MaxControl]byte // the payload of the last control frame

	msg   *[]byte // borrowed: the message being joined, or the last one returned
	op    Opcode  // the message's opcode, while its fragments come
	inMsg bool    // a message has begun and not ended
	err   error
}

// NewReader reads frames from src; a message may hold at most limit
// payload bytes.
func NewReader(src io.Reader, limit int) *Reader {
	return &Reader{src: src, limit: int64(limit)}
}

// Pending reports whether the Reader holds part of a message: a frame
// read in part (after an error) or fragments of a message not yet ended.
func (r *Reader) Pending() bool { return r.inMsg }

// Release gives back the buffer of the message Next last returned, whose
// bytes are then no longer the caller's; it keeps a message still being
// joined.
func (r *Reader) Release() {
	if !r.inMsg && r.msg != nil {
		framebuf.Return(r.msg)
		r.msg = nil
	}
}

// Next returns the next frame: a data message whole (OpText or OpBinary,
// its fragments joined and unmasked), or a control frame (OpPing, OpPong,
// OpClose) with its payload. The payload is valid until the next call of
// Next or Release. At the end of the stream between frames it returns
// io.EOF, within a frame io.ErrUnexpectedEOF.
func (r *Reader) Next() (Opcode, []byte, error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	r.Release()
	for {
		op, p, err := r.next()
		if err != nil {
			r.fail(err)
			return 0, nil, err
		}
		if op != OpContinuation {
			return op, p, nil
		}
	}
}

// fail makes err sticky and gives the buffer back.
func (r *Reader) fail(err error) {
	r.err = err
	r.inMsg = false
	r.Release()
}

// next reads one frame. It returns OpContinuation for a fragment that
// does not end its message.
func (r *Reader) next() (Opcode, []byte, error) {
	fin, op, n, key, err := r.header()
	if err != nil {
		return 0, nil, err
	}
	if op.IsControl() {
		p := r.ctrl[:n]
		if err := r.fill(p, false); err != nil {
			return 0, nil, err
		}
		unmask(key, p)
		return op, p, nil
	}
	var had int64
	if r.inMsg {
		had = int64(len(*r.msg))
	}
	if n > r.limit-had {
		return 0, nil, &Error{Code: CloseTooBig, Msg: "a message over " + itoa64(r.limit) + " bytes"}
	}
	total := int(had + n)
	if r.msg == nil {
		if total == 0 && fin {
			return op, r.ctrl[:0], nil // an empty message: nothing to borrow
		}
		r.msg = framebuf.Borrow(total)
	} else if cap(*r.msg) < total {
		grown := framebuf.Borrow(total)
		*grown = append(*grown, *r.msg...)
		framebuf.Return(r.msg)
		r.msg = grown
	}
	p := (*r.msg)[had:total]
	if err := r.fill(p, false); err != nil {
		return 0, nil, err
	}
	unmask(key, p)
	*r.msg = (*r.msg)[:total]
	if op != OpContinuation {
		r.op = op
	}
	if !fin {
		r.inMsg = true
		return OpContinuation, nil, nil
	}
	r.inMsg = false
	return r.op, *r.msg, nil
}

// header reads and checks one frame header: its first two bytes, then
// (once those pass) the extended length and the mask key.
func (r *Reader) header() (fin bool, op Opcode, n int64, key [4]byte, err error) {
	h := r.hdr[:2]
	if err = r.fill(h, !r.inMsg); err != nil { // between fragments, the end is early
		return
	}
	fin, op = h[0]&0x80 != 0, Opcode(h[0]&0x0f)
	l7 := h[1] & 0x7f
	switch {
	case h[0]&0x70 != 0:
		err = protocolError("a reserved bit set, and no extension agreed")
	case !op.known():
		err = protocolError("unknown opcode " + itoa64(int64(op)))
	case h[1]&0x80 == 0:
		err = protocolError("a client frame not masked")
	case op.IsControl() && !fin:
		err = protocolError("a fragmented control frame")
	case op.IsControl() && l7 > MaxControl:
		err = protocolError("a control frame over 125 bytes")
	case op == OpContinuation && !r.inMsg:
		err = protocolError("a continuation frame with no message to continue")
	case op != OpContinuation && !op.IsControl() && r.inMsg:
		err = protocolError("a new message before the last one ended")
	}
	if err != nil {
		return
	}
	ext := 0
	switch l7 {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	rest := r.hdr[2 : 2+ext+4]
	if err = r.fill(rest, false); err != nil {
		return
	}
	switch l7 {
	case 126:
		n = int64(binary.BigEndian.Uint16(rest))
	case 127:
		u := binary.BigEndian.Uint64(rest)
		if u > 1<<63-1 {
			err = protocolError("a 64-bit length with its high bit set")
			return
		}
		n = int64(u)
	default:
		n = int64(l7)
	}
	copy(key[:], rest[ext:])
	return
}

// fill reads len(p) bytes exactly. At the end of the stream it returns
// io.EOF if nothing was read and start says p begins a frame, else
// io.ErrUnexpectedEOF.
func (r *Reader) fill(p []byte, start bool) error {
	n, err := io.ReadFull(r.src, p)
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) && (n > 0 || !start) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
