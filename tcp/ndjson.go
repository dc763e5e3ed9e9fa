package tcp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/tether-run/tether/internal/framebuf"
	"github.com/tether-run/tether/session"
)

// LineReader splits a byte stream into newline-delimited frames (NDJSON)
// without ever holding more than its limit: compact JSON never contains a
// raw newline (RFC 8259 §7 requires control characters in strings to be
// escaped), so a newline always ends a frame. A trailing "\r" is dropped,
// and empty lines are skipped, so "\r\n" and blank keepalive lines work.
//
// Between frames it holds its bufio.Reader and framebuf.Idle bytes: a
// frame longer than the reader's buffer is assembled in a buffer borrowed
// from framebuf's pools, given back at the next call (before the wait for
// the next frame).
type LineReader struct {
	br    *bufio.Reader
	limit int
	buf   framebuf.Buffer
}

// NewLineReader reads frames of at most limit bytes (not counting the
// newline) from r.
func NewLineReader(r io.Reader, limit int) *LineReader {
	return &LineReader{br: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

// ReadFrame returns the next non-empty frame. The slice is valid until the
// next call. A frame longer than the limit gives an error wrapping
// session.ErrFrameTooLarge after reading at most limit+64 KiB; the stream is then
// out of step and must be abandoned. At EOF it returns io.EOF, or
// io.ErrUnexpectedEOF when a frame was cut short.
func (lr *LineReader) ReadFrame() ([]byte, error) {
	for {
		lr.buf.Reset()
		for {
			chunk, err := lr.br.ReadSlice('\n')
			if lr.buf.Len()+len(chunk) > lr.limit+1 { // +1: the newline
				return nil, fmt.Errorf("%w: over %d bytes", session.ErrFrameTooLarge, lr.limit)
			}
			lr.buf.Write(chunk)
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) && len(bytes.TrimSpace(lr.buf.Bytes())) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line := bytes.TrimRight(lr.buf.Bytes(), "\r\n")
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
	}
}
