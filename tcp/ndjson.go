package tcp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"

	"github.com/tether-run/tether/session"
)

// LineReader splits a byte stream into newline-delimited frames (NDJSON)
// without ever holding more than its limit: compact JSON never contains a
// raw newline (RFC 8259 §7 requires control characters in strings to be
// escaped), so a newline always ends a frame. A trailing "\r" is dropped,
// and empty lines are skipped, so "\r\n" and blank keepalive lines work.
//
// It holds a buffer only while it holds bytes: the buffer comes from a
// pool (by size class, from 16 KiB up to what the limit needs) when a read
// begins, and goes back once every byte read has been returned as a frame
// (Buffered). An idle connection's LineReader holds no buffer.
type LineReader struct {
	r     io.Reader
	limit int
	buf   *[]byte // borrowed from the pools; nil while no byte is held
	// (*buf)[start:end] was read and not yet returned; the bytes before
	// scan hold no newline.
	start, end, scan int
	err              error // the read error, returned once the bytes before it are
}

// NewLineReader reads frames of at most limit bytes (not counting the
// newline) from r.
func NewLineReader(r io.Reader, limit int) *LineReader {
	return &LineReader{r: r, limit: limit}
}

// ReadFrame returns the next non-empty frame. The slice is valid until the
// next call of ReadFrame or Buffered. A frame longer than the limit gives
// an error wrapping session.ErrFrameTooLarge after reading at most
// limit+1 bytes of it; the stream is then out of step and must be
// abandoned. At EOF it returns io.EOF, or io.ErrUnexpectedEOF when a frame
// was cut short.
func (lr *LineReader) ReadFrame() ([]byte, error) {
	for {
		if lr.buf != nil {
			b := (*lr.buf)[:lr.end]
			if i := bytes.IndexByte(b[lr.scan:], '\n'); i >= 0 {
				line := b[lr.start : lr.scan+i]
				lr.start = lr.scan + i + 1
				lr.scan = lr.start
				if len(line) > lr.limit {
					return nil, lr.fail(fmt.Errorf("%w: over %d bytes", session.ErrFrameTooLarge, lr.limit))
				}
				line = bytes.TrimRight(line, "\r")
				if len(bytes.TrimSpace(line)) > 0 {
					return line, nil
				}
				continue
			}
			lr.scan = lr.end
			if lr.end-lr.start > lr.limit {
				// Even a newline next would end a line over the limit.
				return nil, lr.fail(fmt.Errorf("%w: over %d bytes", session.ErrFrameTooLarge, lr.limit))
			}
		}
		if lr.err != nil {
			err := lr.err
			if errors.Is(err, io.EOF) && lr.buf != nil && len(bytes.TrimSpace((*lr.buf)[lr.start:lr.end])) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, lr.fail(err)
		}
		lr.fill()
	}
}

// fill reads once into the buffer, borrowing or growing it as needed, and
// never past limit+1 bytes of the line being read.
func (lr *LineReader) fill() {
	if lr.buf == nil {
		lr.buf = getBuf(readSize)
		lr.start, lr.end, lr.scan = 0, 0, 0
	}
	if lr.start == lr.end {
		lr.start, lr.end, lr.scan = 0, 0, 0
	}
	b := *lr.buf
	want := lr.start + lr.limit + 1 // the line, its newline, no more
	if lr.end == cap(b) {
		// Move the partial line to the front, growing the buffer if the
		// line alone fills it.
		n := lr.end - lr.start
		nb := lr.buf
		if n == cap(b) {
			nb = getBuf(min(2*cap(b), lr.limit+1))
		}
		copy((*nb)[:cap(*nb)], b[lr.start:lr.end])
		if nb != lr.buf {
			putBuf(lr.buf)
			lr.buf = nb
		}
		lr.scan -= lr.start
		lr.start, lr.end = 0, n
		b = *lr.buf
		want = lr.limit + 1
	}
	n, err := lr.r.Read(b[lr.end:min(cap(b), want)])
	lr.end += n
	if err != nil {
		lr.err = err
	}
}

// fail gives the buffer back and returns err.
func (lr *LineReader) fail(err error) error {
	lr.release()
	return err
}

func (lr *LineReader) release() {
	if lr.buf != nil {
		putBuf(lr.buf)
		lr.buf = nil
	}
	lr.start, lr.end, lr.scan = 0, 0, 0
}

// Buffered reports whether the reader holds bytes read and not yet
// returned as frames (a partial frame, or whole ones read with an earlier
// frame). When it holds none it gives its buffer back, which ends the
// validity of the last frame returned.
func (lr *LineReader) Buffered() bool {
	if lr.buf != nil && lr.start < lr.end {
		return true
	}
	lr.release()
	return false
}

// readNow reads once without waiting, through arm and disarm (which set
// and clear an expired read deadline), and reports whether that brought
// bytes (or an error other than the deadline's, which ReadFrame returns
// next). It finds what a tls.Conn holds decrypted, or read from the socket
// and not yet decrypted, which the socket's readiness no longer shows.
func (lr *LineReader) readNow(arm, disarm func()) bool {
	arm()
	lr.fill()
	disarm()
	if lr.err != nil && errors.Is(lr.err, os.ErrDeadlineExceeded) {
		lr.err = nil
	}
	return lr.Buffered() || lr.err != nil
}

// readSize is the first buffer a read borrows: large enough for most
// frames and for a burst of small ones.
const readSize = 16 << 10

var pools [32]sync.Pool // of *[]byte; pools[k] holds buffers of readSize<<k bytes

func sizeClass(n int) int {
	if n <= readSize {
		return 0
	}
	return bits.Len(uint((n - 1) / readSize))
}

// getBuf borrows a buffer of at least n bytes (len == cap).
func getBuf(n int) *[]byte {
	k := sizeClass(n)
	if p, ok := pools[k].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, readSize<<k)
	return &b
}

func putBuf(p *[]byte) { pools[sizeClass(cap(*p))].Put(p) }
