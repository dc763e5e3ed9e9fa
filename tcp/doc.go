// Package tcp is the plain-TCP framer of the session core: tether's framed
// protocol as one compact JSON frame per line (NDJSON), see
// docs/protocol.md. Sessions, subscriptions, queues, heartbeats and ends
// are the core's (package session); this package accepts, splits lines
// (LineReader) and writes them.
//
//	core, _ := session.New(session.Config{}, st, reg, logger, session.Access{})
//	srv, _ := tcp.New(tcp.Config{Addr: "127.0.0.1:7070"}, core)
//	if err := srv.Start(ctx); err != nil { ... }
//	...
//	srv.StopAccepting()       // close the listeners
//	reg.Shutdown(ctx, spread) // the one shutdown path: notify, wait, close
//	srv.Stop(ctx)             // wait for the accept loops and connections
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
// accept goroutine per listener and, per connection, one goroutine that
// reads the first frame, hands the connection to the core (Core.Start)
// and exits. From then on the core runs the connection's reader and
// writer only while there is something to read or write: an idle
// connection has no goroutine, and its LineReader holds no buffer
// (Buffered gives it back to the pool). Stop waits for the accept loops
// and for every connection's end (the core's done) but ends no
// connection itself: the Registry does.
package tcp
