package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// sseEvent is one Server-Sent Event. Its slices are valid until the next
// read of the stream that returned it.
type sseEvent struct {
	id    []byte // the event's id: field, empty if it had none
	event []byte // the event's event: field, empty for a plain message
	data  []byte // its data: lines joined by "\n"
}

// maxSSELine bounds one line of an SSE stream: the harness's payloads are
// a few hundred bytes, so a longer line is a broken server.
const maxSSELine = 1 << 20

// errSSELine is a line longer than maxSSELine.
var errSSELine = errors.New("bench: SSE line longer than 1 MiB")

// sseStream is a minimal Server-Sent Events client (WHATWG HTML, "Server-
// sent events") for the harness, as rawWS is for WebSocket: one TCP
// connection, one bufio.Reader, the chunked transfer coding (RFC 9112
// §7.1) undone in place and the id:, event: and data: fields parsed into
// buffers it reuses, so that an event costs no allocation. net/http's
// client reads a body through its connection's reader goroutine, a
// chunked reader, a body wrapper with its own lock and a second buffer,
// which made the harness, not the server, the limit of SSE fan-out.
// One goroutine reads; close may be called from any.
type sseStream struct {
	c    net.Conn
	br   *bufio.Reader
	stop func() bool // unregisters the context's close

	chunked    bool
	left       int64 // body bytes left: in this chunk if chunked, else in the body; -1: until EOF
	chunkEnded bool  // a chunk's data was read and its CRLF is next
	line       []byte
	ev         sseEvent

	cf *centrifugoSSE // set for a Centrifugo stream, whose events are not one message each
}

// openSSE opens a stream of ch through d, for as long as ctx lasts.
// lastID resumes after an event id; when it is empty the stream starts
// from the oldest retained message if fromStart is set, else with the
// messages published from now on. When it returns, the server has
// answered the stream's headers.
func openSSE(ctx context.Context, d *dialer, sys System, addr, ch, lastID string, fromStart bool) (*sseStream, error) {
	var path string
	switch sys.kind() {
	case Tether:
		path = "/v1/channels/" + ch + "/events"
		if lastID == "" && fromStart {
			path += "?after=0"
		}
	case Nchan:
		path = "/sub/" + ch
	case Centrifugo:
		var err error
		if path, err = centrifugoSSEPath(ch, lastID, fromStart); err != nil {
			return nil, err
		}
		lastID = ""
	default:
		return nil, fmt.Errorf("bench: %s has no SSE", sys)
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: SSE %s%s: %w", addr, path, err)
	}
	s := &sseStream{c: c, br: bufio.NewReaderSize(c, 4096)}
	if sys == Centrifugo {
		s.cf = &centrifugoSSE{}
	}
	s.stop = context.AfterFunc(ctx, func() { c.Close() })
	if err := s.handshake(addr, path, lastID); err != nil {
		s.close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("bench: SSE %s%s: %w", addr, path, err)
	}
	return s, nil
}

// handshake sends the GET and reads the response's headers.
func (s *sseStream) handshake(addr, path, lastID string) error {
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\n"
	if lastID != "" {
		req += "Last-Event-ID: " + lastID + "\r\n"
	}
	if _, err := io.WriteString(s.c, req+"\r\n"); err != nil {
		return err
	}
	// The headers are read once per stream; net/http parses them well.
	// Its Body is not used: the body is read from s.br below.
	res, err := http.ReadResponse(s.br, nil)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return errors.New(res.Status)
	}
	return s.startBody(res)
}

// startBody sets how the body after res's headers is delimited.
func (s *sseStream) startBody(res *http.Response) error {
	s.left = -1
	switch {
	case len(res.TransferEncoding) > 0:
		if res.TransferEncoding[0] != "chunked" {
			return fmt.Errorf("transfer coding %q", res.TransferEncoding)
		}
		s.chunked, s.left = true, 0
	case res.ContentLength >= 0:
		s.left = res.ContentLength
	}
	return nil
}

// message returns the next message of the stream (valid until the next
// call): an event with data, or for Centrifugo a publication.
func (s *sseStream) message() (sseEvent, error) {
	if s.cf != nil {
		return s.cf.next(s)
	}
	return s.next()
}

// next returns the next event that has data (valid until the next call).
func (s *sseStream) next() (sseEvent, error) {
	s.ev = sseEvent{id: s.ev.id[:0], event: s.ev.event[:0], data: s.ev.data[:0]}
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 { // the event ends
			if hasData {
				return s.ev, nil
			}
			s.ev.id, s.ev.event = s.ev.id[:0], s.ev.event[:0]
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) { // no allocation: the compiler compares in place
		case "data":
			if hasData {
				s.ev.data = append(s.ev.data, '\n')
			}
			s.ev.data = append(s.ev.data, value...)
			hasData = true
		case "id":
			s.ev.id = append(s.ev.id[:0], value...)
		case "event":
			s.ev.event = append(s.ev.event[:0], value...)
		}
		// Comments (field "") and retry: are ignored.
	}
}

// readLine returns the next line of the body without its line end (valid
// until the next call). A line is returned straight from the reader's
// buffer unless it spans a chunk or a buffer boundary.
func (s *sseStream) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		if s.left == 0 {
			if !s.chunked {
				return nil, io.EOF
			}
			if err := s.nextChunk(); err != nil {
				return nil, err
			}
		}
		if s.br.Buffered() == 0 {
			if _, err := s.br.Peek(1); err != nil {
				return nil, err
			}
		}
		n := s.br.Buffered()
		if s.left >= 0 && int64(n) > s.left {
			n = int(s.left)
		}
		b, _ := s.br.Peek(n)
		i := bytes.IndexByte(b, '\n')
		if i >= 0 {
			b = b[:i+1]
		}
		// Discarding buffered bytes does not refill: b stays valid.
		s.br.Discard(len(b))
		if s.left > 0 {
			s.left -= int64(len(b))
		}
		if i >= 0 && len(s.line) == 0 {
			return trimEOL(b), nil
		}
		if len(s.line)+len(b) > maxSSELine {
			return nil, errSSELine
		}
		s.line = append(s.line, b...)
		if i >= 0 {
			return trimEOL(s.line), nil
		}
	}
}

// nextChunk reads the next chunk's size line (and the CRLF ending the
// previous chunk's data); the last chunk, of size 0, ends the body.
func (s *sseStream) nextChunk() error {
	if s.chunkEnded {
		if err := s.expectCRLF(); err != nil {
			return err
		}
		s.chunkEnded = false
	}
	line, err := s.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errors.New("bench: SSE chunk size line too long")
		}
		return err
	}
	size := trimEOL(line)
	if i := bytes.IndexByte(size, ';'); i >= 0 { // chunk extensions are ignored
		size = size[:i]
	}
	n, ok := parseHex(bytes.TrimSpace(size))
	if !ok {
		return fmt.Errorf("bench: SSE chunk size %q", size)
	}
	if n == 0 {
		return io.EOF // trailers, if any, are not read: the stream is over
	}
	s.left, s.chunkEnded = n, true
	return nil
}

func (s *sseStream) expectCRLF() error {
	b, err := s.br.Peek(2)
	if err != nil {
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errors.New("bench: SSE chunk data not followed by CRLF")
	}
	_, err = s.br.Discard(2)
	return err
}

// parseHex parses a chunk size: 1 to 15 hex digits.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(c)
	}
	return n, true
}

// trimEOL drops a line's "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// close ends the stream: a pending next fails.
func (s *sseStream) close() {
	s.stop()
	s.c.Close()
}
