// Package framebuf holds the bytes of one incoming frame for the framed
// transports (WebSocket, TCP) so that a connection keeps only a small
// buffer between frames: a frame larger than that borrows a buffer from a
// pool, by size class, and gives it back before the connection waits for
// its next frame (the gobwas/ws write-up "A Million WebSockets and Go":
// buffers belong to I/O in progress, not to connections). A Batch does the
// same for outgoing frames (WebSocket, TCP, SSE): the frames one wake-up of
// a connection's writer finds queued go out in one write, from a buffer
// borrowed for that write only.
//
// A Buffer or a Batch is used by one goroutine at a time; the pools are
// safe for concurrent use.
package framebuf

import (
	"io"
	"math/bits"
	"sync"
)

// Idle is what a Buffer keeps of its own between frames.
const Idle = 4 << 10

// minClass is the smallest pooled buffer; classes double from it.
const minClass = 16 << 10

var pools [40]sync.Pool // of *[]byte; pools[k] holds buffers of minClass<<k bytes

func class(n int) int {
	if n <= minClass {
		return 0
	}
	return bits.Len(uint((n - 1) / minClass))
}

func get(n int) *[]byte {
	k := class(n)
	if p, ok := pools[k].Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, minClass<<k)
	return &b
}

func put(p *[]byte) { pools[class(cap(*p))].Put(p) }

// Buffer accumulates one frame.
type Buffer struct {
	own      []byte  // Idle bytes, kept
	b        []byte  // the frame so far: own, or *borrowed
	borrowed *[]byte // from a pool, given back by Reset
}

// Bytes returns the frame so far, valid until the next Reset.
func (f *Buffer) Bytes() []byte { return f.b }

// Len is the length of the frame so far.
func (f *Buffer) Len() int { return len(f.b) }

// Reset empties the buffer and gives back what it borrowed, so a
// connection between frames holds Idle bytes at most.
func (f *Buffer) Reset() {
	if f.borrowed != nil {
		*f.borrowed = f.b[:0]
		put(f.borrowed)
		f.borrowed = nil
	}
	if f.own == nil {
		f.own = make([]byte, 0, Idle)
	}
	f.b = f.own[:0]
}

// grow makes room for n more bytes.
func (f *Buffer) grow(n int) {
	if f.b == nil {
		f.Reset()
	}
	if len(f.b)+n <= cap(f.b) {
		return
	}
	p := get(max(2*cap(f.b), len(f.b)+n))
	*p = append(*p, f.b...)
	if f.borrowed != nil {
		put(f.borrowed)
	}
	f.borrowed, f.b = p, *p
}

// Write appends p; it never fails.
func (f *Buffer) Write(p []byte) (int, error) {
	f.grow(len(p))
	f.b = append(f.b, p...)
	return len(p), nil
}

// ReadLimited appends what r yields until io.EOF, or until it has read max
// bytes (then it returns with nil error: the caller compares Len with its
// limit).
func (f *Buffer) ReadLimited(r io.Reader, max int) error {
	for read := 0; read < max; {
		if len(f.b) == cap(f.b) {
			f.grow(min(cap(f.b)+1, max-read))
		}
		room := f.b[len(f.b):cap(f.b)]
		room = room[:min(len(room), max-read)]
		n, err := r.Read(room)
		f.b = f.b[:len(f.b)+n]
		read += n
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// FlushAt is the size past which a Batch should be written out before
// more is added: a wake-up with a long backlog still goes out in writes of
// this order, and a batch borrows a buffer of one or two size classes.
const FlushAt = 2 * minClass

// Batch gathers the outgoing frames of one wake-up of a connection's
// writer, so that they leave in one write(2) instead of one each. It holds
// a buffer from the pools only while frames are pending: between batches
// an idle connection keeps none.
type Batch struct {
	b *[]byte // borrowed; nil when nothing is pending
}

// Len is the number of bytes pending.
func (w *Batch) Len() int {
	if w.b == nil {
		return 0
	}
	return len(*w.b)
}

// Write appends p; it never fails.
func (w *Batch) Write(p []byte) (int, error) {
	w.grow(len(p))
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// WriteByte appends c; it never fails.
func (w *Batch) WriteByte(c byte) error {
	w.grow(1)
	*w.b = append(*w.b, c)
	return nil
}

func (w *Batch) grow(n int) {
	if w.b == nil {
		w.b = get(n)
		return
	}
	if len(*w.b)+n <= cap(*w.b) {
		return
	}
	p := get(max(2*cap(*w.b), len(*w.b)+n))
	*p = append(*p, *w.b...)
	put(w.b)
	w.b = p
}

// Flush writes what is pending to dst in one Write and gives the buffer
// back, whether or not the write succeeded.
func (w *Batch) Flush(dst io.Writer) error {
	if w.b == nil {
		return nil
	}
	_, err := dst.Write(*w.b)
	w.Discard()
	return err
}

// Discard drops what is pending and gives the buffer back.
func (w *Batch) Discard() {
	if w.b != nil {
		put(w.b)
		w.b = nil
	}
}
