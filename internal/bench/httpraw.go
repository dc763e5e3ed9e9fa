package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// rawPoster is a minimal HTTP/1.1 client for the publish scenario, as
// rawWS is for WebSocket: one kept-alive connection, one bufio.Reader,
// requests written with one write from a buffer it reuses and answers
// parsed in place. net/http's client spends more CPU per request than a
// fast server does (its connection's reader and writer goroutines, a
// request and a response object, header maps, context plumbing), and on 2
// cores shared with the server that is the scenario's ceiling, not the
// server's. One goroutine uses a rawPoster.
type rawPoster struct {
	d    *dialer
	addr string
	c    net.Conn
	br   *bufio.Reader
	req  []byte // reused for each request
	msg  []byte // reused for each request's body before it is copied into req
	body []byte // reused for each answer's body
}

// maxAnswerBody bounds an answer's body: publish answers are small.
const maxAnswerBody = 1 << 20

func newRawPoster(d *dialer, addr string) *rawPoster { return &rawPoster{d: d, addr: addr} }

// post sends a POST of body to path with the extra header lines hdr (each
// ending in "\r\n") and returns the answer's status and body (valid until
// the next post). A connection the server closed is redialed once.
func (p *rawPoster) post(ctx context.Context, path, hdr string, body []byte) (int, []byte, error) {
	fresh := p.c == nil
	if fresh {
		if err := p.dial(ctx); err != nil {
			return 0, nil, err
		}
	}
	p.req = append(p.req[:0], "POST "...)
	p.req = append(p.req, path...)
	p.req = append(p.req, " HTTP/1.1\r\nHost: "...)
	p.req = append(p.req, p.addr...)
	p.req = append(p.req, "\r\nContent-Type: application/json\r\n"...)
	p.req = append(p.req, hdr...)
	p.req = append(p.req, "Content-Length: "...)
	p.req = strconv.AppendInt(p.req, int64(len(body)), 10)
	p.req = append(p.req, "\r\n\r\n"...)
	p.req = append(p.req, body...)
	status, ans, keep, err := p.roundTrip()
	if err != nil && !fresh && ctx.Err() == nil {
		// The server may have closed an idle connection: once more, anew.
		p.close()
		if err := p.dial(ctx); err != nil {
			return 0, nil, err
		}
		status, ans, keep, err = p.roundTrip()
	}
	if err != nil || !keep {
		p.close()
	}
	return status, ans, err
}

func (p *rawPoster) dial(ctx context.Context) error {
	c, err := p.d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	p.c = c
	if p.br == nil {
		p.br = bufio.NewReaderSize(c, 4096)
	} else {
		p.br.Reset(c)
	}
	return nil
}

func (p *rawPoster) close() {
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
}

// roundTrip writes p.req and reads the answer: its status, body, and
// whether the connection stays open.
func (p *rawPoster) roundTrip() (status int, body []byte, keep bool, err error) {
	if _, err := p.c.Write(p.req); err != nil {
		return 0, nil, false, err
	}
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, err
	}
	// "HTTP/1.1 201 Created"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, false, fmt.Errorf("bench: bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, false, fmt.Errorf("bench: bad status line %q", line)
	}
	length, chunked := int64(-1), false
	keep = line[7] == '1' // HTTP/1.1 keeps alive by default, 1.0 does not
	for {
		h, err := p.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, false, err
		}
		h = trimEOL(h)
		if len(h) == 0 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 || length > maxAnswerBody {
				return 0, nil, false, fmt.Errorf("bench: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = keep && !bytes.EqualFold(value, []byte("close"))
		}
	}
	p.body = p.body[:0]
	switch {
	case chunked:
		err = p.readChunked()
	case length >= 0:
		p.body = append(p.body, make([]byte, length)...)
		_, err = io.ReadFull(p.br, p.body)
	default: // the body ends with the connection
		keep = false
		var b []byte
		b, err = io.ReadAll(io.LimitReader(p.br, maxAnswerBody))
		p.body = append(p.body, b...)
	}
	if err != nil {
		return 0, nil, false, err
	}
	return status, p.body, keep, nil
}

// readChunked reads a chunked body (RFC 9112 §7.1) into p.body.
func (p *rawPoster) readChunked() error {
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size := trimEOL(line)
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i]
		}
		n, ok := parseHex(bytes.TrimSpace(size))
		if !ok || int64(len(p.body))+n > maxAnswerBody {
			return fmt.Errorf("bench: bad chunk size %q", size)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				t, err := p.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(trimEOL(t)) == 0 {
					return nil
				}
			}
		}
		start := len(p.body)
		p.body = append(p.body, make([]byte, n)...)
		if _, err := io.ReadFull(p.br, p.body[start:]); err != nil {
			return err
		}
		crlf, err := p.br.Peek(2)
		if err != nil {
			return err
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return errors.New("bench: chunk data not followed by CRLF")
		}
		p.br.Discard(2)
	}
}

// rawPublish publishes p to ch through pp, as publish does through
// net/http, and waits for the server's acknowledgement.
func rawPublish(ctx context.Context, pp *rawPoster, sys System, ch string, p []byte) error {
	var path, hdr string
	var body []byte
	switch sys.kind() {
	case Tether:
		path = "/v1/channels/" + ch + "/messages"
		body = append(append(append(pp.msg[:0], '"'), p...), '"')
	case Centrifugo:
		path, hdr = "/api/publish", "X-API-Key: "+centrifugoAPIKey+"\r\n"
		body = appendCentrifugoPublish(pp.msg[:0], ch, p)
	default:
		path, body = "/pub/"+ch, p
	}
	pp.msg = body
	status, ans, err := pp.post(ctx, path, hdr, body)
	if err != nil {
		return fmt.Errorf("bench: publish: %w", err)
	}
	if status != 200 && status != 201 && status != 202 {
		return fmt.Errorf("bench: publish: %d %.200s", status, ans)
	}
	if sys == Centrifugo && bytes.HasPrefix(ans, []byte(`{"error"`)) {
		return fmt.Errorf("bench: publish: %.200s", ans)
	}
	return nil
}
