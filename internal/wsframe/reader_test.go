package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// frame builds a client frame: masked with key unless key is nil, with
// the given first byte (FIN, RSV and opcode) and payload; lenForm forces
// the 16- or 64-bit length form (0: the shortest).
func frame(b0 byte, key []byte, payload []byte, lenForm int) []byte {
	b := []byte{b0}
	maskBit := byte(0)
	if key != nil {
		maskBit = 0x80
	}
	n := len(payload)
	switch {
	case lenForm == 64 || (lenForm == 0 && n > 0xffff):
		b = binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
	case lenForm == 16 || (lenForm == 0 && n >= 126):
		b = binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	default:
		b = append(b, maskBit|byte(n))
	}
	if key == nil {
		return append(b, payload...)
	}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

var key = []byte{0x37, 0xfa, 0x21, 0x3d}

func masked(b0 byte, payload string) []byte { return frame(b0, key, []byte(payload), 0) }

type got struct {
	op Opcode
	p  string
}

// readAll reads frames until an error, which it returns.
func readAll(r *Reader) ([]got, error) {
	var out []got
	for {
		op, p, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, got{op, string(p)})
	}
}

func TestReader(t *testing.T) {
	big := strings.Repeat("x", 70_000)
	cases := []struct {
		name string
		in   [][]byte
		want []got
	}{
		{"text", [][]byte{masked(0x81, `{"a":1}`)}, []got{{OpText, `{"a":1}`}}},
		{"binary", [][]byte{masked(0x82, "bin")}, []got{{OpBinary, "bin"}}},
		{"empty", [][]byte{masked(0x81, "")}, []got{{OpText, ""}}},
		{"16-bit length", [][]byte{masked(0x81, strings.Repeat("y", 300))}, []got{{OpText, strings.Repeat("y", 300)}}},
		{"64-bit length", [][]byte{masked(0x82, big)}, []got{{OpBinary, big}}},
		{"long form of a short length", [][]byte{frame(0x81, key, []byte("hi"), 64)}, []got{{OpText, "hi"}}},
		{"fragments", [][]byte{masked(0x01, "ab"), masked(0x00, "cd"), masked(0x80, "ef")}, []got{{OpText, "abcdef"}}},
		{"empty fragments", [][]byte{masked(0x02, ""), masked(0x00, "x"), masked(0x80, "")}, []got{{OpBinary, "x"}}},
		{"control between fragments", [][]byte{masked(0x01, "ab"), masked(0x89, "p1"), masked(0x00, "cd"), masked(0x8a, "p2"), masked(0x80, "ef")},
			[]got{{OpPing, "p1"}, {OpPong, "p2"}, {OpText, "abcdef"}}},
		{"close", [][]byte{masked(0x88, "\x03\xe8bye")}, []got{{OpClose, "\x03\xe8bye"}}},
		{"ping of 125 bytes", [][]byte{masked(0x89, strings.Repeat("p", 125))}, []got{{OpPing, strings.Repeat("p", 125)}}},
		{"message at the limit", [][]byte{masked(0x81, strings.Repeat("z", 100_000))}, []got{{OpText, strings.Repeat("z", 100_000)}}},
		{"fragments at the limit", [][]byte{masked(0x01, strings.Repeat("z", 50_000)), masked(0x80, strings.Repeat("z", 50_000))},
			[]got{{OpText, strings.Repeat("z", 100_000)}}},
		{"grown across pool classes", [][]byte{masked(0x01, "a"), masked(0x00, strings.Repeat("b", 20_000)), masked(0x80, strings.Repeat("c", 40_000))},
			[]got{{OpText, "a" + strings.Repeat("b", 20_000) + strings.Repeat("c", 40_000)}}},
	}
	for _, tc := range cases {
		for _, split := range []string{"whole", "byte by byte"} {
			t.Run(tc.name+"/"+split, func(t *testing.T) {
				var src io.Reader = bytes.NewReader(bytes.Join(tc.in, nil))
				if split != "whole" {
					src = iotest.OneByteReader(src)
				}
				r := NewReader(src, 100_000)
				out, err := readAll(r)
				if err != io.EOF {
					t.Fatalf("ended with %v, want io.EOF", err)
				}
				if len(out) != len(tc.want) {
					t.Fatalf("got %d frames, want %d", len(out), len(tc.want))
				}
				for i := range out {
					if out[i] != tc.want[i] {
						t.Fatalf("frame %d: opcode %v, %d bytes; want opcode %v, %d bytes", i, out[i].op, len(out[i].p), tc.want[i].op, len(tc.want[i].p))
					}
				}
				if r.msg != nil || r.Pending() {
					t.Fatal("the reader holds a buffer after the end")
				}
			})
		}
	}
}

// TestReaderViolations: each violation of RFC 6455 ends the stream with
// its close status, and later calls return the same error.
func TestReaderViolations(t *testing.T) {
	cases := []struct {
		name string
		in   [][]byte
		code int
	}{
		{"not masked", [][]byte{frame(0x81, nil, []byte("hi"), 0)}, 1002},
		{"RSV1", [][]byte{masked(0xc1, "hi")}, 1002},
		{"RSV2", [][]byte{masked(0xa1, "hi")}, 1002},
		{"RSV3", [][]byte{masked(0x91, "hi")}, 1002},
		{"opcode 3", [][]byte{masked(0x83, "hi")}, 1002},
		{"opcode 7", [][]byte{masked(0x87, "hi")}, 1002},
		{"opcode 0xB", [][]byte{masked(0x8b, "hi")}, 1002},
		{"opcode 0xF", [][]byte{masked(0x8f, "")}, 1002},
		{"ping of 126 bytes", [][]byte{masked(0x89, strings.Repeat("p", 126))}, 1002},
		{"close of 126 bytes (16-bit form)", [][]byte{frame(0x88, key, []byte("\x03\xe8"), 16)}, 1002},
		{"fragmented ping", [][]byte{masked(0x09, "p")}, 1002},
		{"continuation first", [][]byte{masked(0x80, "x")}, 1002},
		{"text inside a message", [][]byte{masked(0x01, "a"), masked(0x81, "b")}, 1002},
		{"binary inside a message", [][]byte{masked(0x01, "a"), masked(0x82, "b")}, 1002},
		{"64-bit length, high bit", [][]byte{{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}}, 1002},
		{"over the limit", [][]byte{masked(0x81, strings.Repeat("x", 1001))}, 1009},
		{"2^40 bytes claimed", [][]byte{{0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4}}, 1009},
		{"fragments over the limit", [][]byte{masked(0x01, strings.Repeat("x", 600)), masked(0x80, strings.Repeat("x", 401))}, 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(bytes.Join(tc.in, nil)), 1000)
			_, err := readAll(r)
			var we *Error
			if !errors.As(err, &we) || we.Code != tc.code {
				t.Fatalf("ended with %v, want close status %d", err, tc.code)
			}
			if _, _, again := r.Next(); again != err {
				t.Fatalf("next call: %v, want the same error", again)
			}
			if r.msg != nil {
				t.Fatal("the reader holds a buffer after an error")
			}
		})
	}
}

// TestReaderTooLargeReadsNoPayload: the size is refused from the header:
// not a byte after it is read.
func TestReaderTooLargeReadsNoPayload(t *testing.T) {
	hdr := []byte{0x81, 0x80 | 126, 0x04, 0x00, 1, 2, 3, 4} // 1024 bytes claimed
	src := bytes.NewReader(append(hdr, make([]byte, 1024)...))
	r := NewReader(src, 1000)
	if _, _, err := r.Next(); err == nil {
		t.Fatal("a frame over the limit was accepted")
	}
	if read := int(src.Size()) - src.Len(); read != len(hdr) {
		t.Fatalf("read %d bytes, want the %d of the header", read, len(hdr))
	}
	// An unmasked frame is refused from its first two bytes.
	src = bytes.NewReader(frame(0x81, nil, []byte("hello"), 0))
	NewReader(src, 1000).Next()
	if read := int(src.Size()) - src.Len(); read != 2 {
		t.Fatalf("read %d bytes of an unmasked frame, want 2", read)
	}
}

func TestReaderEOF(t *testing.T) {
	whole := masked(0x81, "hello")
	for i := 1; i < len(whole); i++ {
		_, err := readAll(NewReader(bytes.NewReader(whole[:i]), 1000))
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("cut after %d bytes: %v, want io.ErrUnexpectedEOF", i, err)
		}
	}
	// A message cut between its fragments.
	_, err := readAll(NewReader(bytes.NewReader(masked(0x01, "ab")), 1000))
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("cut between fragments: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestParseClose(t *testing.T) {
	cases := []struct {
		p      string
		code   int
		reason string
		errNum int
	}{
		{"", CloseNoStatus, "", 0},
		{"\x03\xe8", 1000, "", 0},
		{"\x03\xe9bye", 1001, "bye", 0},
		{"\x0b\xb8", 3000, "", 0},
		{"\x13\x87", 4999, "", 0},
		{"\x03\xf7", 1015, "", 1002},
		{"\x03", 0, "", 1002},
		{"\x03\xec", 1004, "", 1002},
		{"\x03\xed", 1005, "", 1002},
		{"\x03\xee", 1006, "", 1002},
		{"\x03\xe7", 999, "", 1002},
		{"\x07\xd0", 2000, "", 1002},
		{"\x13\x88", 5000, "", 1002},
		{"\x03\xe8\xff", 0, "", 1007},
	}
	for _, tc := range cases {
		code, reason, err := ParseClose([]byte(tc.p))
		var we *Error
		switch {
		case tc.errNum != 0 && (!errors.As(err, &we) || we.Code != tc.errNum):
			t.Errorf("ParseClose(%q): %v, want status %d", tc.p, err, tc.errNum)
		case tc.errNum == 0 && (err != nil || code != tc.code || reason != tc.reason):
			t.Errorf("ParseClose(%q) = %d %q %v, want %d %q", tc.p, code, reason, err, tc.code, tc.reason)
		}
	}
}

func TestAppend(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xffff, 0x10000} {
		h := AppendHeader(nil, OpText, n)
		want := 2
		switch {
		case n > 0xffff:
			want = 10
		case n >= 126:
			want = 4
		}
		if len(h) != want || h[0] != 0x81 {
			t.Errorf("AppendHeader(%d): % x, want %d bytes", n, h, want)
		}
	}
	long := strings.Repeat("é", 100) // 200 bytes: cut at a rune boundary
	c := AppendClose(nil, 1001, long)
	if len(c) > 2+MaxControl || c[0] != 0x88 {
		t.Fatalf("AppendClose: %d bytes", len(c))
	}
	if _, reason, err := ParseClose(c[2:]); err != nil || !strings.HasPrefix(long, reason) {
		t.Fatalf("AppendClose's reason %q: %v", reason, err)
	}
	if c := AppendClose(nil, CloseNoStatus, "x"); !bytes.Equal(c, []byte{0x88, 0}) {
		t.Fatalf("AppendClose(no status) = % x", c)
	}
}
