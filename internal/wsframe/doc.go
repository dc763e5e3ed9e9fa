// Package wsframe reads and writes the frames of the WebSocket protocol
// (RFC 6455 §5) on the server's side, for package ws: it holds no buffer
// while it waits and never trusts a length it has not checked.
//
// A Reader reads each frame exactly: its 2 first bytes, the rest of its
// header, then its payload, never a byte of the next frame, so that a
// frame header claiming more than the limit is refused before a byte of
// its payload is read, and a connection between frames holds nothing but
// the Reader itself (a few hundred bytes). A message's payload goes into
// a buffer borrowed from internal/framebuf's pools, sized by the checked
// length, and given back at the next call (Next, Release). Control frames
// (at most 125 bytes) are read into the Reader's own array.
//
//	r := wsframe.NewReader(conn, 1<<20)
//	for {
//		op, p, err := r.Next()
//		...
//	}
//
// The writers append the server's frames (unmasked, RFC 6455 §5.1) to a
// caller's buffer: AppendHeader, AppendControl, AppendClose.
//
// Concurrency: a Reader is used by one goroutine at a time. The functions
// are safe for concurrent use.
package wsframe
