package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/tether-run/tether/conn"
)

func TestDecode(t *testing.T) {
	after := "0"
	tests := []struct {
		in      string
		want    Frame
		wantErr error
	}{
		{in: `{"id":"c1","type":"subscribe","channel":"news","after":"0"}`, want: Frame{ID: "c1", Type: "subscribe", Channel: "news", After: &after}},
		{in: `{"id":"c1","type":"subscribe","channel":"news"}`, want: Frame{ID: "c1", Type: "subscribe", Channel: "news"}},
		{in: ` {"type":"hello","session":"k","extra":[1,2]} `, want: Frame{Type: "hello", Session: "k"}},
		{in: `{"id":"p","type":"publish","channel":"a","data":{"x":[1]},"idempotency_key":"k"}`,
			want: Frame{ID: "p", Type: "publish", Channel: "a", Data: []byte(`{"x":[1]}`), IdempotencyKey: "k"}},
		{in: `{"id":"p","type":"publish","channel":"a","data":null}`, want: Frame{ID: "p", Type: "publish", Channel: "a", Data: []byte(`null`)}},
		{in: `{"id":"c1","type":"subscribe","channel":7}`, want: Frame{ID: "c1", Type: "subscribe"}, wantErr: ErrBadField},
		{in: `{"id":"c1","type":"subscribe","after":0}`, want: Frame{ID: "c1", Type: "subscribe"}, wantErr: ErrBadField},
		{in: `[1]`, wantErr: ErrBadFrame},
		{in: `"x"`, wantErr: ErrBadFrame},
		{in: ``, wantErr: ErrBadFrame},
		{in: `{"id":`, wantErr: ErrBadFrame},
		{in: `{"id":"a"} {"id":"b"}`, wantErr: ErrBadFrame},
		{in: "\x00\xff", wantErr: ErrBadFrame},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in))
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("Decode(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if errors.Is(err, ErrBadField) {
			if got.ID != tt.want.ID || got.Type != tt.want.Type {
				t.Errorf("Decode(%q) = %+v, want id and type of %+v", tt.in, got, tt.want)
			}
			continue
		}
		if got.ID != tt.want.ID || got.Type != tt.want.Type || got.Channel != tt.want.Channel ||
			got.Session != tt.want.Session || got.IdempotencyKey != tt.want.IdempotencyKey ||
			!bytes.Equal(got.Data, tt.want.Data) || (got.After == nil) != (tt.want.After == nil) ||
			got.After != nil && *got.After != *tt.want.After {
			t.Errorf("Decode(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

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
		{in: "01234567890\n", limit: 10, err: ErrFrameTooLarge},
		{in: "ok\n" + strings.Repeat("x", 1<<20), limit: 100, want: []string{"ok"}, err: ErrFrameTooLarge},
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
// most the limit plus one buffer, whatever its length.
func TestLineReaderBounded(t *testing.T) {
	r := &countingReader{}
	lr := NewLineReader(r, 1024)
	if _, err := lr.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if r.n > 1024+64<<10 {
		t.Fatalf("read %d bytes before refusing, want at most limit + 64 KiB", r.n)
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

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"c1","type":"subscribe","channel":"news","after":"0"}`,
		`{"id":"p","type":"publish","channel":"a","data":{"x":[1,2,{"y":null}]},"idempotency_key":"k"}`,
		`{"type":"hello","session":"k"}`, `{"type":"pong","id":"s1"}`, `{"id":7}`, `[]`, `{`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrBadField) {
				t.Fatalf("error %v wraps neither ErrBadFrame nor ErrBadField", err)
			}
			if errors.Is(err, ErrBadFrame) && (fr.ID != "" || fr.Type != "") {
				t.Fatalf("bad frame returned fields %+v", fr)
			}
			return
		}
		// Whatever decoded can be answered: the error frame encodes.
		errFrame(fr.ID, CodeUnknownType, "unknown frame type "+quote(fr.Type))
	})
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
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) {
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

func TestReasonOf(t *testing.T) {
	tests := []struct {
		err  error
		want conn.Reason
	}{
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, conn.ReasonReset},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}, conn.ReasonTimeout},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, conn.ReasonClosed},
		{fmt.Errorf("failed to read frame header: %w", io.EOF), conn.ReasonClosed},
		{io.ErrUnexpectedEOF, conn.ReasonClosed},
		{net.ErrClosed, ""},
		{errors.New("something else"), ""},
	}
	for _, tt := range tests {
		if got := ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
