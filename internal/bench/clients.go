package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
)

// dialer dials the harness's client connections: from namespace ns when
// set, else on loopback from a source address spread over 127.0.0.2 to
// 127.0.0.251 when spread is set, so that 100k connections to one server
// port do not run out of ephemeral ports.
type dialer struct {
	ns     string
	spread bool
	next   atomic.Uint32
	onConn func(net.Conn) // if set, sees every connection dialed
}

// DialContext has the signature http.Transport wants.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	if d.spread && d.ns == "" {
		i := d.next.Add(1)
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%250))}
	}
	var c net.Conn
	err := inNS(d.ns, func() error {
		var err error
		c, err = nd.DialContext(ctx, network, addr)
		return err
	})
	if err == nil && d.onConn != nil {
		d.onConn(c)
	}
	return c, err
}

// clientPlace returns a dialer for clients of a server at pl.
func clientPlace(pl place, spread bool) *dialer {
	d := &dialer{spread: spread}
	if pl.pair != nil {
		d.ns = pl.pair.client
	}
	return d
}

// httpClient is a client for many concurrent requests through d: one
// connection each, kept alive for reuse.
func httpClient(d *dialer, conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}}
}

// publish POSTs one payload to channel ch and waits for the server's
// acknowledgement: tether answers once the message is fsynced, Nchan once
// it is in its memory store, socket.io once it is handed to its sockets,
// Centrifugo once it is in its memory engine's history.
func publish(ctx context.Context, c *http.Client, sys System, addr, ch string, p []byte) error {
	var u string
	body := p
	switch sys.kind() {
	case Tether:
		u = "http://" + addr + "/v1/channels/" + ch + "/messages"
		body = make([]byte, 0, len(p)+2)
		body = append(append(append(body, '"'), p...), '"')
	case Centrifugo:
		_, err := centrifugoAPI(ctx, c, addr, "publish", centrifugoPublishBody(ch, p))
		return err
	default:
		u = "http://" + addr + "/pub/" + ch
	}
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("bench: publish: %w", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 && res.StatusCode != 201 && res.StatusCode != 202 {
		return fmt.Errorf("bench: publish: %s", res.Status)
	}
	return nil
}

// wsSub is one subscriber of one channel over a framed connection:
// WebSocket on any system (tether's framed protocol at /v1/ws, Nchan's
// WebSocket subscriber at /sub/<ch>, socket.io's websocket transport
// (Engine.IO 4) joined to room <ch>), or tether's framed protocol on TCP.
type wsSub struct {
	sys   System
	ws    frameConn
	c     net.Conn
	local string // its local address, as the server sees the remote

	pending []byte // Centrifugo: the rest of the last message, one reply or push a line
}

// frameConn reads and writes the messages of a framed connection:
// WebSocket messages (rawWS) or NDJSON lines (rawTCP).
type frameConn interface {
	// read returns the next message, valid until the next read.
	read() ([]byte, error)
	writeText(p []byte) error
}

// dialWS connects and subscribes; when it returns, the subscription is
// active (tether replied to subscribe, socket.io acknowledged the
// namespace connect; Nchan subscribes on upgrade).
func dialWS(ctx context.Context, sys System, addr, ch string, d *dialer) (*wsSub, error) {
	var path string
	switch sys.kind() {
	case Tether:
		path = "/v1/ws"
	case Nchan:
		path = "/sub/" + ch
	case SocketIO:
		path = "/socket.io/?EIO=4&transport=websocket&channel=" + url.QueryEscape(ch)
	case Centrifugo:
		path = "/connection/websocket"
	}
	ws, err := dialRawWS(ctx, d, addr, path)
	if err != nil {
		return nil, fmt.Errorf("bench: websocket %s%s: %w", addr, path, err)
	}
	return subscribed(ctx, &wsSub{sys: sys, ws: ws, c: ws.c, local: ws.c.LocalAddr().String()}, ch)
}

// dialTCP connects to tether's framed protocol on TCP (its --tcp-addr)
// and subscribes; when it returns, tether replied to subscribe.
func dialTCP(ctx context.Context, sys System, tcpAddr, ch string, d *dialer) (*wsSub, error) {
	if !sys.IsTether() {
		return nil, fmt.Errorf("bench: %s has no framed protocol on TCP", sys)
	}
	c, err := d.DialContext(ctx, "tcp", tcpAddr)
	if err != nil {
		return nil, fmt.Errorf("bench: tcp %s: %w", tcpAddr, err)
	}
	return subscribed(ctx, &wsSub{sys: sys, ws: newRawTCP(c), c: c, local: c.LocalAddr().String()}, ch)
}

// subscribed subscribes s to ch, closing it if that fails or ctx ends.
func subscribed(ctx context.Context, s *wsSub, ch string) (*wsSub, error) {
	stop := context.AfterFunc(ctx, s.closeNow)
	err := s.subscribe(ch)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		s.closeNow()
		return nil, err
	}
	return s, nil
}

func (s *wsSub) subscribe(ch string) error {
	switch s.sys.kind() {
	case Tether:
		req := fmt.Sprintf(`{"id":"sub","type":"subscribe","channel":%q}`, ch)
		if err := s.ws.writeText([]byte(req)); err != nil {
			return fmt.Errorf("bench: subscribe: %w", err)
		}
		return s.until(func(f []byte) bool { return bytes.Contains(f, []byte(`"id":"sub"`)) }, `"ok":true`)
	case SocketIO:
		// Engine.IO open packet "0{...}", then the namespace connect "40".
		if err := s.until(func(f []byte) bool { return len(f) > 0 && f[0] == '0' }, ""); err != nil {
			return err
		}
		if err := s.ws.writeText([]byte("40")); err != nil {
			return fmt.Errorf("bench: socket.io connect: %w", err)
		}
		return s.until(func(f []byte) bool { return bytes.HasPrefix(f, []byte("40")) }, "")
	case Centrifugo:
		return s.centrifugoSubscribe(ch)
	}
	return nil
}

// until reads messages until match, and fails unless that one contains
// want.
func (s *wsSub) until(match func([]byte) bool, want string) error {
	for range 100 {
		f, err := s.read()
		if err != nil {
			return fmt.Errorf("bench: %s handshake: %w", s.sys, err)
		}
		if match(f) {
			if want != "" && !bytes.Contains(f, []byte(want)) {
				return fmt.Errorf("bench: %s handshake: %s", s.sys, f)
			}
			return nil
		}
	}
	return fmt.Errorf("bench: %s handshake: no answer in 100 messages", s.sys)
}

// next returns the next message that may carry a payload (valid until the
// next call), answering the heartbeats of tether (ping frames), socket.io
// ("2") and Centrifugo ({}) on the way.
func (s *wsSub) next() ([]byte, error) {
	for {
		f, err := s.read()
		if err != nil {
			return nil, err
		}
		switch s.sys.kind() {
		case Tether:
			if bytes.Contains(f, []byte(`"type":"ping"`)) {
				var p struct{ ID string }
				json.Unmarshal(f, &p)
				pong, _ := json.Marshal(map[string]string{"type": "pong", "id": p.ID})
				if err := s.ws.writeText(pong); err != nil {
					return nil, err
				}
				continue
			}
			if !bytes.Contains(f, []byte(`"type":"message"`)) {
				continue
			}
		case SocketIO:
			if len(f) == 1 && f[0] == '2' {
				if err := s.ws.writeText([]byte("3")); err != nil {
					return nil, err
				}
				continue
			}
			if !bytes.HasPrefix(f, []byte("42")) {
				continue
			}
		case Centrifugo:
			if len(f) == 2 && f[0] == '{' && f[1] == '}' { // ping: answered by a pong, {}
				if err := s.ws.writeText([]byte("{}")); err != nil {
					return nil, err
				}
				continue
			}
			if !bytes.Contains(f, []byte(`"pub":`)) {
				continue
			}
		}
		return f, nil
	}
}

// read returns the next message: for Centrifugo, the next line of a
// WebSocket message.
func (s *wsSub) read() ([]byte, error) {
	if s.sys == Centrifugo {
		return s.centrifugoNext()
	}
	return s.ws.read()
}

// drain reads and answers heartbeats until the connection ends.
func (s *wsSub) drain() {
	for {
		if _, err := s.next(); err != nil {
			return
		}
	}
}

// closeNow closes the TCP connection without a WebSocket close frame: the
// server sees a FIN.
func (s *wsSub) closeNow() { s.c.Close() }

// reset closes the TCP connection with SO_LINGER 0: the server sees a RST.
func (s *wsSub) reset() {
	if tc, ok := s.c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	s.c.Close()
}

// longPoll holds one long-poll request of ch open until it is answered or
// ctx ends: tether's GET /v1/channels/<ch>/messages with the longest wait,
// Nchan's long-poll subscriber.
// wrote is called once the request is sent.
func longPoll(ctx context.Context, c *http.Client, sys System, addr, ch string, wrote func()) error {
	var u string
	switch sys.kind() {
	case Tether:
		u = "http://" + addr + "/v1/channels/" + ch + "/messages?wait=120s"
	case Nchan:
		u = "http://" + addr + "/sub/" + ch
	default:
		return fmt.Errorf("bench: %s has no long-poll", sys)
	}
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", u, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return errors.New("bench: long-poll answered")
}
