// Package ws serves tether's framed protocol (package protocol) over
// WebSocket (RFC 6455), one JSON frame per text message, see
// docs/protocol.md. It uses github.com/coder/websocket.
//
//	eng, _ := protocol.NewEngine(protocol.Config{Store: st, Registry: reg})
//	h, _ := ws.New(ws.Config{Engine: eng})
//	mux.Handle("GET /v1/ws", h)
//	...
//	reg.Shutdown(ctx, spread) // tell every client, wait for them to leave
//	h.Stop(ctx)               // refuse new upgrades, end the rest, wait
//
// A client presents a session key with ?session=KEY on the URL. Serve the
// handler from a listener made by conn.Listen (with conn.ConnContext) so
// that silent peers are noticed (reason timeout) and resets told apart;
// the handler keeps the hijacked connection for conn.CloseConn's reset and
// discard modes.
//
// The handler bounds incoming messages itself (protocol.Config.MaxFrameSize)
// rather than with the library's read limit, so that an oversized message
// is answered with a frame_too_large error frame before the close frame
// (status 1008).
//
// Concurrency: a Handler is safe for concurrent use. Each connection is
// served on the ServeHTTP goroutine that upgraded it; Stop ends them and
// waits for them.
package ws
