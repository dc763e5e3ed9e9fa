package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// rawWS is a minimal WebSocket client (RFC 6455) for the harness: one
// goroutine reads, any may write. It exists because a general client costs
// more per message than the servers under test do on 2 cores: it reads
// each frame into a buffer it reuses, with no per-read context or
// allocation, so that fan-out figures measure the server, not the client.
// Fragmented messages are joined; the servers here send none.
type rawWS struct {
	c   net.Conn
	br  *bufio.Reader
	buf []byte // the last message read; reused by the next read

	wmu sync.Mutex // serialises writes
}

// wsGUID is the RFC 6455 §1.3 constant of Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// dialRawWS opens a WebSocket to http://addr+path through d.
func dialRawWS(ctx context.Context, d *dialer, addr, path string) (*rawWS, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, key)
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 2048)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %s", res.Status)
	}
	if !stop() {
		c.Close()
		return nil, ctx.Err()
	}
	c.SetDeadline(time.Time{})
	return &rawWS{c: c, br: br}, nil
}

// read returns the next data message (valid until the next read),
// answering pings on the way. A close frame reads as a *wsCloseError,
// which is io.EOF to errors.Is.
func (w *rawWS) read() ([]byte, error) {
	w.buf = w.buf[:0]
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if h[1]&0x80 != 0 || n > 1<<20 {
			return nil, errors.New("websocket: masked or oversized frame from the server")
		}
		if op >= 8 { // control frame, never fragmented (RFC 6455 §5.5)
			p := make([]byte, n)
			if _, err := io.ReadFull(w.br, p); err != nil {
				return nil, err
			}
			switch op {
			case 8:
				return nil, parseClose(p)
			case 9:
				if err := w.write(10, p); err != nil {
					return nil, err
				}
			}
			continue
		}
		start := len(w.buf)
		w.buf = append(w.buf, make([]byte, n)...)
		if _, err := io.ReadFull(w.br, w.buf[start:]); err != nil {
			return nil, err
		}
		if fin {
			return w.buf, nil
		}
	}
}

// rawTCP reads and writes tether's framed protocol on TCP: one compact
// JSON frame per line (docs/protocol.md, "Framing").
type rawTCP struct {
	c   net.Conn
	br  *bufio.Reader
	wmu sync.Mutex // serialises writes
}

func newRawTCP(c net.Conn) *rawTCP { return &rawTCP{c: c, br: bufio.NewReaderSize(c, 4096)} }

// read returns the next non-empty line without its line end (valid until
// the next read).
func (t *rawTCP) read() ([]byte, error) {
	for {
		line, err := t.br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 {
			return line, nil
		}
	}
}

// writeText sends one frame.
func (t *rawTCP) writeText(p []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	_, err := t.c.Write(append(p[:len(p):len(p)], '\n'))
	return err
}

// writeText sends one text message.
func (w *rawWS) writeText(p []byte) error { return w.write(1, p) }

// write sends one masked frame (clients must mask, RFC 6455 §5.3).
func (w *rawWS) write(op byte, p []byte) error {
	frame := make([]byte, 0, 14+len(p))
	frame = append(frame, 0x80|op)
	switch {
	case len(p) < 126:
		frame = append(frame, 0x80|byte(len(p)))
	case len(p) < 1<<16:
		frame = append(frame, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(len(p)))
	}
	var mask [4]byte
	rand.Read(mask[:])
	frame = append(frame, mask[:]...)
	for i, b := range p {
		frame = append(frame, b^mask[i%4])
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_, err := w.c.Write(frame)
	return err
}
