package ws

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// refusal is a handshake the server refuses: the status and the JSON
// error it answers (docs/api.md).
type refusal struct {
	status    int
	code, msg string
}

// checkHandshake checks an opening handshake (RFC 6455 §4.2.1) and returns
// the client's key. Without the upgrade (HTTP/1.0, no "Upgrade" token in
// Connection, no "websocket" in Upgrade) or with another version than 13
// it answers 426, as RFC 6455 §4.4 asks for a version it does not speak;
// a key that is not the base64 of 16 bytes is 400. The method was checked
// before.
func checkHandshake(w http.ResponseWriter, r *http.Request) (string, *refusal) {
	h := w.Header()
	if !r.ProtoAtLeast(1, 1) || !hasToken(r.Header, "Connection", "upgrade") || !hasToken(r.Header, "Upgrade", "websocket") {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
		return "", &refusal{http.StatusUpgradeRequired, "upgrade_required", "GET /v1/ws needs a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket, HTTP/1.1)"}
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		h.Set("Sec-WebSocket-Version", "13")
		return "", &refusal{http.StatusUpgradeRequired, "upgrade_required", "only WebSocket version 13 is spoken (RFC 6455)"}
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return "", &refusal{http.StatusBadRequest, "bad_request", "the handshake needs one Sec-WebSocket-Key"}
	}
	key := strings.TrimSpace(keys[0])
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", &refusal{http.StatusBadRequest, "bad_request", "Sec-WebSocket-Key must be the base64 of 16 bytes"}
	}
	return key, nil
}

// hasToken reports whether a comma-separated header holds token, in any
// case (RFC 9110 §5.6.1: a list may come in several header lines).
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// selectProtocol returns the subprotocol the server selects: Subprotocol,
// as the client spelled it, when offered, else none. The token a browser
// offers beside it (auth.TokenProtocolPrefix) is never selected.
func selectProtocol(r *http.Request) string {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.Trim(t, " \t"); strings.EqualFold(t, Subprotocol) {
				return t
			}
		}
	}
	return ""
}

// acceptKey is Sec-WebSocket-Accept for key (RFC 6455 §4.2.2 item 5.4).
func acceptKey(key string) string {
	h := sha1.New()
	io.WriteString(h, key)
	io.WriteString(h, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// handshakeWrite bounds the write of the 101 response.
const handshakeWrite = 10 * time.Second

// upgrade takes the connection from net/http and answers 101 Switching
// Protocols on it. It returns the raw connection and the bytes net/http
// had read past the request (a client may send its first frame right
// behind it). net/http's 4 KiB reader and writer, handed over with the
// connection, are emptied: nothing keeps them while the connection lives.
// No extension is agreed (permessage-deflate is refused by leaving it
// out).
func upgrade(w http.ResponseWriter, key, protocol string) (net.Conn, []byte, error) {
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var pending []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pending = bytes.Clone(b)
	}
	*brw.Reader = bufio.Reader{}
	*brw.Writer = bufio.Writer{}
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	b.WriteString(acceptKey(key))
	if protocol != "" {
		b.WriteString("\r\nSec-WebSocket-Protocol: ")
		b.WriteString(protocol)
	}
	b.WriteString("\r\n\r\n")
	nc.SetWriteDeadline(time.Now().Add(handshakeWrite))
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, nil, err
	}
	nc.SetWriteDeadline(time.Time{})
	return nc, pending, nil
}
