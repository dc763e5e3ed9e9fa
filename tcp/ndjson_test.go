package tcp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tether-run/tether/session"
)

func TestLineReader(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  []string
		err   error
	}{
		{in: "a\nbb\n", limit: 10, want: []string{"a", "bb"}, err: io.EOF},
		{in: "a\r\n\r\n\n  \nb\n", limit: 10, want: []string{"a", "b"}, err: io.EOF},
		{in: "abc\ndef", limit: 10, want: []string{"abc"}, err: io.ErrUnexpectedEOF},
		{in: "0123456789\n", limit: 10, want: []string{"0123456789"}, err: io.EOF},
		{in: "01234567890\n", limit: 10, err: session.ErrFrameTooLarge},
		{in: "ok\n" + strings.Repeat("x", 1<<20), limit: 100, want: []string{"ok"}, err: session.ErrFrameTooLarge},
	}
	for _, tt := range tests {
		// One byte at a time too, to cross every buffer boundary.
		for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
			lr := NewLineReader(r, tt.limit)
			var got []string
			var err error
			for {
				var b []byte
				if b, err = lr.ReadFrame(); err != nil {
					break
				}
				got = append(got, string(b))
			}
			if !errors.Is(err, tt.err) || strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("%q (limit %d): got %q, %v; want %q, %v", tt.in, tt.limit, got, err, tt.want, tt.err)
			}
		}
	}
}

// TestLineReaderBounded: a frame without end is refused after reading at
// most the limit plus one byte of it (before: plus 64 KiB), whatever its
// length.
func TestLineReaderBounded(t *testing.T) {
	r := &countingReader{}
	lr := NewLineReader(r, 1024)
	if _, err := lr.ReadFrame(); !errors.Is(err, session.ErrFrameTooLarge) {
		t.Fatalf("err = %v, want session.ErrFrameTooLarge", err)
	}
	if r.n > 1024+1 {
		t.Fatalf("read %d bytes before refusing, want at most limit + 1", r.n)
	}
}

// TestLineReaderBuffered: Buffered reports the bytes read and not yet
// returned (whole frames, or part of one), and once there are none the
// reader holds no buffer.
func TestLineReaderBuffered(t *testing.T) {
	r, w := io.Pipe()
	defer r.Close()
	lr := NewLineReader(r, 100)
	if lr.Buffered() || lr.buf != nil {
		t.Fatal("a new reader holds bytes")
	}
	go w.Write([]byte("a\nbb\ncc")) // one read: two frames and a part
	for _, want := range []string{"a", "bb"} {
		b, err := lr.ReadFrame()
		if err != nil || string(b) != want {
			t.Fatalf("ReadFrame = %q, %v; want %q", b, err, want)
		}
		if !lr.Buffered() {
			t.Fatalf("after %q: Buffered false with bytes held", want)
		}
	}
	go w.Write([]byte("c\n"))
	if b, err := lr.ReadFrame(); err != nil || string(b) != "ccc" {
		t.Fatalf("ReadFrame = %q, %v; want ccc", b, err)
	}
	if lr.Buffered() || lr.buf != nil {
		t.Fatalf("after the last frame: Buffered %v, buffer held %v; want neither", lr.Buffered(), lr.buf != nil)
	}
}

// countingReader is an endless stream of 'x'.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	r.n += len(p)
	return len(p), nil
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n"), 4)
	f.Add([]byte(`{"id":"1","type":"ping"}`+"\n"), 100)
	f.Add([]byte("xxxxxxxxxx"), 3)
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		if limit < 1 || limit > 1<<16 {
			return
		}
		lr := NewLineReader(bytes.NewReader(b), limit)
		var frames [][]byte
		for {
			fr, err := lr.ReadFrame()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, session.ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(fr) > limit || len(bytes.TrimSpace(fr)) == 0 || bytes.IndexByte(fr, '\n') >= 0 {
				t.Fatalf("bad frame %q (limit %d)", fr, limit)
			}
			frames = append(frames, append([]byte(nil), fr...))
		}
		// Every frame returned is a line of the input, in order.
		rest := b
		for _, fr := range frames {
			i := bytes.Index(rest, fr)
			if i < 0 {
				t.Fatalf("frame %q is not in the input's remainder", fr)
			}
			rest = rest[i+len(fr):]
		}
	})
}
