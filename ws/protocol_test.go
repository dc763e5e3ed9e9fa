package ws_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/session"
)

// clientFrame is a client frame: first byte b0 (FIN, RSV, opcode), masked
// unless unmasked, with payload.
func clientFrame(b0 byte, payload string, unmasked ...bool) []byte {
	b := []byte{b0}
	maskBit := byte(0x80)
	if len(unmasked) > 0 && unmasked[0] {
		maskBit = 0
	}
	n := len(payload)
	switch {
	case n > 0xffff:
		b = binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
	case n >= 126:
		b = binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	default:
		b = append(b, maskBit|byte(n))
	}
	if maskBit == 0 {
		return append(b, payload...)
	}
	key := []byte{0xa1, 0x5e, 0x07, 0x9c}
	b = append(b, key...)
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

func closePayload(code int, reason string) string {
	return string(binary.BigEndian.AppendUint16(nil, uint16(code))) + reason
}

// serverFrame is one frame the server sent.
type serverFrame struct {
	fin     bool
	op      byte
	payload []byte
}

// readServerFrame reads one server frame, which must be unmasked with its
// reserved bits clear (RFC 6455 §5.1, §5.2).
func readServerFrame(br *bufio.Reader) (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[1]&0x80 != 0 || h[0]&0x70 != 0 {
		return serverFrame{}, errors.New("a server frame masked or with reserved bits")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > 16<<20 {
		return serverFrame{}, errors.New("a server frame over 16 MiB")
	}
	p := make([]byte, n)
	_, err := io.ReadFull(br, p)
	return serverFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f, payload: p}, err
}

// readUntilClose reads server frames until a close frame; it returns its
// status (1005 for none) and the text frames before it.
func readUntilClose(t *testing.T, nc net.Conn, br *bufio.Reader) (int, []string) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var texts []string
	for {
		f, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("no close frame: %v (after %q)", err, texts)
		}
		switch f.op {
		case 0x1:
			texts = append(texts, string(f.payload))
		case 0x8:
			if len(f.payload) < 2 {
				return 1005, texts
			}
			return int(binary.BigEndian.Uint16(f.payload)), texts
		}
	}
}

// TestProtocolViolations: each frame that breaks RFC 6455 (or tether's
// limits) is answered with its close status, over raw TCP, and the
// connection ends with protocol-error.
func TestProtocolViolations(t *testing.T) {
	long := strings.Repeat("x", 126)
	cases := []struct {
		name   string
		frames [][]byte
		code   int
		errTxt string // an error frame the client gets first, if any
	}{
		{"unmasked", [][]byte{clientFrame(0x81, `{"id":"p","type":"ping"}`, true)}, 1002, ""},
		{"RSV1 (no deflate agreed)", [][]byte{clientFrame(0xc1, `{}`)}, 1002, ""},
		{"RSV2", [][]byte{clientFrame(0xa1, `{}`)}, 1002, ""},
		{"RSV3", [][]byte{clientFrame(0x91, `{}`)}, 1002, ""},
		{"opcode 3", [][]byte{clientFrame(0x83, `{}`)}, 1002, ""},
		{"opcode 0xB", [][]byte{clientFrame(0x8b, ``)}, 1002, ""},
		{"ping over 125 bytes", [][]byte{clientFrame(0x89, long)}, 1002, ""},
		{"close over 125 bytes", [][]byte{clientFrame(0x88, closePayload(1000, long))}, 1002, ""},
		{"fragmented ping", [][]byte{clientFrame(0x09, "p")}, 1002, ""},
		{"continuation with no message", [][]byte{clientFrame(0x80, `{}`)}, 1002, ""},
		{"a new message inside a fragmented one", [][]byte{clientFrame(0x01, `{"id"`), clientFrame(0x81, `{}`)}, 1002, ""},
		{"close of one byte", [][]byte{clientFrame(0x88, "\x03")}, 1002, ""},
		{"close status 1005", [][]byte{clientFrame(0x88, closePayload(1005, ""))}, 1002, ""},
		{"close status 999", [][]byte{clientFrame(0x88, closePayload(999, ""))}, 1002, ""},
		{"close status 2000", [][]byte{clientFrame(0x88, closePayload(2000, ""))}, 1002, ""},
		{"close reason not UTF-8", [][]byte{clientFrame(0x88, closePayload(1000, "\xff"))}, 1007, ""},
		{"text not UTF-8", [][]byte{clientFrame(0x81, "{\"id\":\"p\",\"type\":\"ping\",\"x\":\"\xc3\"}")}, 1007, "invalid_utf8"},
		{"fragments not UTF-8 once joined", [][]byte{clientFrame(0x01, "{\"id\":\"p\",\"x\":\"\xe2\x82"), clientFrame(0x80, "\"}")}, 1007, "invalid_utf8"},
		{"over the limit", [][]byte{clientFrame(0x81, strings.Repeat("y", 1025))}, 1009, "frame_too_large"},
		{"fragments over the limit", [][]byte{clientFrame(0x01, strings.Repeat("y", 600)), clientFrame(0x80, strings.Repeat("y", 600))}, 1009, "frame_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newCountingEnv(t, session.Config{MaxFrameSize: 1024})
			nc, br := rawDial(t, e.url)
			for _, f := range tc.frames {
				nc.Write(f)
			}
			code, texts := readUntilClose(t, nc, br)
			if code != tc.code {
				t.Errorf("close status %d, want %d", code, tc.code)
			}
			if tc.errTxt != "" && (len(texts) != 1 || !strings.Contains(texts[0], `"code":"`+tc.errTxt+`"`)) {
				t.Errorf("frames before the close: %q, want one error %s", texts, tc.errTxt)
			}
			if tc.errTxt == "" && len(texts) != 0 {
				t.Errorf("frames before the close: %q, want none", texts)
			}
			e.WantEnd(t, conn.ReasonProtocolError)
		})
	}
}

// request sends a ping request as a text message split as frames says
// (fragment payloads), and waits for its pong.
func wantPong(t *testing.T, nc net.Conn, br *bufio.Reader, id string) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("waiting for pong %s: %v", id, err)
		}
		if f.op == 0x1 && strings.Contains(string(f.payload), `"id":"`+id+`"`) {
			if !strings.Contains(string(f.payload), `"type":"pong"`) {
				t.Fatalf("got %s, want a pong", f.payload)
			}
			return
		}
	}
}

// TestFragments: a message in fragments, with control frames between
// them, is served as one; a ping between fragments is answered with a
// pong of its payload at once.
func TestFragments(t *testing.T) {
	e, _ := newCountingEnv(t, session.Config{})
	nc, br := rawDial(t, e.url)
	nc.Write(clientFrame(0x01, `{"id":"f1",`))
	nc.Write(clientFrame(0x89, "between"))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := readServerFrame(br)
	if err != nil || f.op != 0xA || string(f.payload) != "between" || !f.fin {
		t.Fatalf("after a ping between fragments: %+v, %v; want a pong \"between\"", f, err)
	}
	nc.Write(clientFrame(0x00, ``))               // an empty fragment
	nc.Write(clientFrame(0x8A, "unasked"))        // a pong nobody asked for: accepted
	nc.Write(clientFrame(0x80, `"type":"ping"}`)) // the end
	wantPong(t, nc, br, "f1")
	// Binary fragments too (tether accepts binary messages of JSON).
	nc.Write(append(clientFrame(0x02, `{"id":"f2",`), clientFrame(0x80, `"type":"ping"}`)...))
	wantPong(t, nc, br, "f2")
}

// TestByteByByte: a frame written one byte per write, each its own TCP
// segment, is read whole.
func TestByteByByte(t *testing.T) {
	e, _ := newCountingEnv(t, session.Config{})
	nc, br := rawDial(t, e.url)
	nc.(*net.TCPConn).SetNoDelay(true)
	for _, b := range clientFrame(0x81, `{"id":"slow","type":"ping","pad":"`+strings.Repeat("z", 200)+`"}`) {
		if _, err := nc.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	wantPong(t, nc, br, "slow")
}

// TestFrameBehindHandshake: frames sent in the same write as the request,
// which net/http reads with it, are served.
func TestFrameBehindHandshake(t *testing.T) {
	e, _ := newCountingEnv(t, session.Config{})
	nc, err := net.Dial("tcp", e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	msg := append(clientFrame(0x81, `{"id":"early","type":"ping"}`), clientFrame(0x89, "x")...)
	msg = append(msg, clientFrame(0x81, `{"id":"early2","type":"ping"}`)...)
	nc.Write(append([]byte(req), msg...))
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	wantPong(t, nc, br, "early")
	wantPong(t, nc, br, "early2")
}

// TestPeerClose: a close frame from the client is answered with one of
// its status (or an empty one), and the connection ends closed.
func TestPeerClose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		want    int
	}{{"1000", closePayload(1000, "bye"), 1000}, {"4000", closePayload(4000, ""), 4000}, {"empty", "", 1005}} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newCountingEnv(t, session.Config{})
			nc, br := rawDial(t, e.url)
			nc.Write(clientFrame(0x88, tc.payload))
			if code, _ := readUntilClose(t, nc, br); code != tc.want {
				t.Fatalf("close answered with status %d, want %d", code, tc.want)
			}
			e.WantEnd(t, conn.ReasonClosed)
			// The server closes the TCP connection after the handshake.
			if _, err := readServerFrame(br); err == nil {
				t.Fatal("a frame after the close frame")
			}
		})
	}
}

// TestServerCloseHandshake: the server's close frame (a shutdown's 1001)
// waits for the client's answer, then the server closes.
func TestServerCloseHandshake(t *testing.T) {
	e, _ := newCountingEnv(t, session.Config{})
	nc, br := rawDial(t, e.url)
	nc.Write(clientFrame(0x81, `{"id":"p","type":"ping"}`))
	wantPong(t, nc, br, "p")
	id := e.Registry.List()[0].ID
	if err := e.Registry.Close(id, conn.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	code, texts := readUntilClose(t, nc, br)
	if code != 1000 || len(texts) != 1 || !strings.Contains(texts[0], `"kicked"`) {
		t.Fatalf("got %q then close %d, want the kicked error then 1000", texts, code)
	}
	nc.Write(clientFrame(0x88, closePayload(1000, "")))
	start := time.Now()
	if _, err := readServerFrame(br); !errors.Is(err, io.EOF) {
		t.Fatalf("after the close handshake: %v, want EOF", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("the server closed %v after the client's close frame, want at once (not the 1s close wait)", took)
	}
	e.WantEnd(t, conn.ReasonKicked)
}

// TestHandshake: the opening handshake's checks (RFC 6455 §4.2.1) and
// answers, with the JSON errors of docs/api.md.
func TestHandshake(t *testing.T) {
	e, _ := newCountingEnv(t, session.Config{})
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	good := "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n"
	cases := []struct {
		name, req string
		status    int
		code      string
		header    map[string]string // wanted response headers ("" = absent)
	}{
		{"good", "GET /v1/ws HTTP/1.1\r\n" + good, 101, "", map[string]string{
			"Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Upgrade": "websocket", "Connection": "Upgrade",
			"Sec-WebSocket-Protocol": "", "Sec-WebSocket-Extensions": ""}},
		{"tokens in lists and any case", "GET /v1/ws HTTP/1.1\r\nUpgrade: h2c, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n", 101, "", nil},
		{"Connection in two lines", "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n", 101, "", nil},
		{"tether selected", "GET /v1/ws HTTP/1.1\r\n" + good + "Sec-WebSocket-Protocol: chat, tether.token.abc, tether\r\n", 101, "",
			map[string]string{"Sec-WebSocket-Protocol": "tether"}},
		{"tether selected as spelled", "GET /v1/ws HTTP/1.1\r\n" + good + "Sec-WebSocket-Protocol: Tether\r\n", 101, "",
			map[string]string{"Sec-WebSocket-Protocol": "Tether"}},
		{"token protocol never selected", "GET /v1/ws HTTP/1.1\r\n" + good + "Sec-WebSocket-Protocol: tether.token.abc\r\n", 101, "",
			map[string]string{"Sec-WebSocket-Protocol": ""}},
		{"deflate offered, not agreed", "GET /v1/ws HTTP/1.1\r\n" + good + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", 101, "",
			map[string]string{"Sec-WebSocket-Extensions": ""}},
		{"no upgrade", "GET /v1/ws HTTP/1.1\r\n", 426, "upgrade_required", map[string]string{"Upgrade": "websocket"}},
		{"no Connection token", "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n", 426, "upgrade_required", nil},
		{"HTTP/1.0", "GET /v1/ws HTTP/1.0\r\n" + good, 426, "upgrade_required", nil},
		{"version 8", "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " + key + "\r\n", 426, "upgrade_required",
			map[string]string{"Sec-WebSocket-Version": "13"}},
		{"no version", "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\n", 426, "upgrade_required",
			map[string]string{"Sec-WebSocket-Version": "13"}},
		{"no key", "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", 400, "bad_request", nil},
		{"key of 15 bytes", "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
			base64.StdEncoding.EncodeToString(make([]byte, 15)) + "\r\n", 400, "bad_request", nil},
		{"key not base64", "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n", 400, "bad_request", nil},
		{"two keys", "GET /v1/ws HTTP/1.1\r\n" + good + "Sec-WebSocket-Key: " + key + "\r\n", 400, "bad_request", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", e.url)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			io.WriteString(nc, strings.Replace(tc.req, "\r\n", "\r\nHost: x\r\n", 1)+"\r\n")
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			for k, want := range tc.header {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if tc.code == "" {
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("body: %+v, %v; want error %s", body, err, tc.code)
			}
		})
	}
	// The accept value is SHA-1 of the key and the RFC's GUID.
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("the RFC's example accept value is %s", got)
	}
}
