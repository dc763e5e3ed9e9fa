// Package ws is the WebSocket framer of the session core: tether's framed
// protocol over WebSocket (RFC 6455), one JSON frame per text message, see
// docs/protocol.md. The server side is tether's own: the opening
// handshake here, the frames in internal/wsframe. Sessions,
// subscriptions, queues, heartbeats and ends are the core's
// (package session); this package upgrades, reads and writes messages.
//
//	core, _ := session.New(session.Config{}, st, reg, logger, session.Access{})
//	h, _ := ws.New(ws.Config{}, core)
//	mux.Handle("GET /v1/ws", h)
//	...
//	reg.Shutdown(ctx, spread) // the one shutdown path: notify, wait, close
//	h.Stop(ctx)               // refuse new upgrades, wait for the handlers
//
// A client presents a session key with ?session=KEY on the URL. Serve the
// handler from a listener made by conn.Listen (with conn.ConnContext) so
// that silent peers are noticed (reason timeout) and resets told apart;
// the handler keeps the hijacked connection for conn.CloseConn's reset and
// discard modes and the core's stall guard.
//
// The handshake (RFC 6455 §4.2) needs GET over HTTP/1.1, the Upgrade and
// Connection tokens, version 13 (else 426 with Sec-WebSocket-Version: 13)
// and a key of 16 bytes in base64; the subprotocol "tether" is selected
// when offered, no extension is agreed (permessage-deflate is refused by
// leaving it out), the Origin is checked against the one list of allowed
// origins, and every refusal is a JSON error. After the hijack the
// connection keeps the bytes net/http had read past the request (a first
// frame may follow it at once) and nothing of net/http's 4 KiB reader and
// writer.
//
// Incoming frames are read exactly, header first: a frame that is not
// masked, sets a reserved bit, has an unknown opcode, is a control frame
// over 125 bytes or fragmented, or breaks the order of fragments is
// answered with close status 1002; a message whose header would take it
// (its fragments added up) over session.Config.MaxFrameSize gets a
// frame_too_large error frame and close status 1009, then a reset,
// without a byte of its payload read. Text that is not UTF-8 gets
// invalid_utf8 and 1007. Pings are answered with pongs, a close frame
// with a close frame (its status checked, RFC 6455 §7.4). A message's
// bytes live in a buffer borrowed from a pool (internal/framebuf) only
// while it is read and dispatched: between frames a connection holds no
// buffer.
//
// Concurrency: a Handler is safe for concurrent use. ServeHTTP returns
// once the connection is upgraded and its session started
// (session.Core.Start): the core reads only while the socket or the
// connection holds bytes (the connection's Buffered, conn.Ready) and
// writes only while something is queued, so an idle connection has no
// goroutine. Stop ends nothing itself: it waits for every connection's
// done, which the Registry brings about.
package ws
