// Package ws is the WebSocket framer of the session core: tether's framed
// protocol over WebSocket (RFC 6455), one JSON frame per text message, see
// docs/protocol.md. It uses github.com/coder/websocket. Sessions,
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
// The handler bounds incoming messages itself (session.Config.MaxFrameSize)
// rather than with the library's read limit, which counts payload as it is
// read: a frameGuard between the socket and the library checks each frame
// header, so a message whose header claims more than the limit is answered
// with a frame_too_large error frame and close status 1009, then a reset,
// without reading a byte of its payload. Text that is not UTF-8 gets
// invalid_utf8 and 1007. A message's bytes live in a buffer borrowed from a
// pool (internal/framebuf) only while it is read and dispatched.
//
// Concurrency: a Handler is safe for concurrent use. Each connection is
// served on the ServeHTTP goroutine that upgraded it, which is the core's
// writer; the core starts the reader and timer goroutines and waits for
// them. Stop ends nothing itself: it waits for the handlers, which the
// Registry ends.
package ws
