package wsframe

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader: whatever bytes a client sends, the Reader never panics,
// never holds a buffer beyond what the limit allows, returns frames
// within the limits, and ends in io.EOF, io.ErrUnexpectedEOF or an
// *Error with status 1002 or 1009, which it then keeps returning.
//
// A short run: go test -run '^$' -fuzz FuzzReader -fuzztime 30s ./internal/wsframe/
func FuzzReader(f *testing.F) {
	seeds := [][]byte{
		masked(0x81, `{"id":"1","type":"ping"}`),
		bytes.Join([][]byte{masked(0x01, "ab"), masked(0x89, "p"), masked(0x80, "cd")}, nil),
		masked(0x88, "\x03\xe8bye"),
		frame(0x82, key, bytes.Repeat([]byte("x"), 300), 0),
		frame(0x81, key, []byte("hi"), 64),
		frame(0x81, nil, []byte("unmasked"), 0),
		{0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		masked(0xc1, "rsv"),
		masked(0x09, "fragmented ping"),
		masked(0x80, "continuation"),
		{0x81},
		{},
	}
	for _, s := range seeds {
		f.Add(s, uint16(1000))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit16 uint16) {
		limit := int(limit16)
		r := NewReader(bytes.NewReader(data), limit)
		maxCap := max(16<<10, 2*limit) // framebuf's smallest class, or one class above the limit
		var err error
		for calls := 0; ; calls++ {
			if calls > len(data)/2+1 { // every frame takes at least 2 bytes
				t.Fatalf("%d calls of Next on %d bytes", calls, len(data))
			}
			var op Opcode
			var p []byte
			op, p, err = r.Next()
			if r.msg != nil && cap(*r.msg) > maxCap {
				t.Fatalf("holds a buffer of %d bytes, limit %d", cap(*r.msg), limit)
			}
			if err != nil {
				break
			}
			switch {
			case op.IsControl() && len(p) > MaxControl:
				t.Fatalf("a control frame of %d bytes", len(p))
			case !op.IsControl() && len(p) > limit:
				t.Fatalf("a message of %d bytes, limit %d", len(p), limit)
			case op == OpContinuation || !op.known():
				t.Fatalf("returned opcode %d", op)
			}
		}
		var we *Error
		switch {
		case err == io.EOF, err == io.ErrUnexpectedEOF:
		case errors.As(err, &we) && (we.Code == CloseProtocolError || we.Code == CloseTooBig):
		default:
			t.Fatalf("ended with %v", err)
		}
		if _, _, again := r.Next(); again != err {
			t.Fatalf("after %v, Next returned %v", err, again)
		}
		if r.msg != nil {
			t.Fatal("holds a buffer after its end")
		}
	})
}

// FuzzParseClose: a close payload is accepted only with a code a peer may
// send and a UTF-8 reason, and nothing panics.
func FuzzParseClose(f *testing.F) {
	for _, s := range []string{"", "\x03", "\x03\xe8", "\x03\xe8bye", "\x03\xed", "\x0f\xa0\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		code, _, err := ParseClose(p)
		if err == nil && code != CloseNoStatus && !ValidCloseCode(code) {
			t.Fatalf("accepted code %d", code)
		}
		if err == nil && len(p) == 1 {
			t.Fatal("accepted a one-byte close payload")
		}
	})
}
