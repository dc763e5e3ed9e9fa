// Package tcp serves tether's framed protocol (package protocol) over
// plain TCP: one compact JSON frame per line (NDJSON), see
// docs/protocol.md.
//
//	eng, _ := protocol.NewEngine(protocol.Config{Store: st, Registry: reg})
//	srv, _ := tcp.New(tcp.Config{Engine: eng, Addr: "127.0.0.1:7070"})
//	if err := srv.Start(ctx); err != nil { ... }
//	...
//	reg.Shutdown(ctx, spread) // tell every client, wait for them to leave
//	srv.Stop(ctx)             // stop accepting, end the rest, wait
//
// A client may present a session key by making its first frame
// {"type":"hello","session":"KEY"}. The connection is registered once its
// first frame arrived (within Config.HelloTimeout), so that the key is
// known at admission.
//
// Start listens with conn.Listen: TCP keepalive and TCP_USER_TIMEOUT let
// the kernel give up on a silent peer (reason timeout), and recorded socket
// errors tell a reset from a close.
//
// Concurrency: a Server's methods are safe for concurrent use. It runs one
// accept goroutine per listener and one goroutine per connection (which
// runs protocol.Engine.Serve); Stop waits for all of them.
package tcp
