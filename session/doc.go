// Package protocol is tether's framed protocol, shared by the WebSocket
// (package ws) and TCP (package tcp) transports: the frames, their codec,
// and the Engine that serves one connection's session. docs/protocol.md
// is the wire contract.
//
// A transport turns its connection into a [Conn] (read one frame, write
// one frame, close the transport's way) and calls [Engine.Serve], which
// opens the connection in the registry.Registry, serves it, and returns once
// Handle.End has recorded its one end reason:
//
//	eng, err := protocol.NewEngine(protocol.Config{Store: st, Registry: reg})
//	...
//	err = eng.Serve(ctx, myConn, registry.OpenInfo{Transport: registry.TransportTCP, Remote: addr, Conn: nc}, nil)
//
// Inside a session: one reader goroutine decodes frames and dispatches
// them; requests that touch storage run on their own goroutines, at most
// Config.MaxInFlight at once, so replies interleave (each carries its
// request's id); one goroutine per subscription reads its channel from the
// store at its own cursor; one writer goroutine drains the outgoing queue,
// control frames before messages; one timer goroutine sends pings and
// enforces the heartbeat, idle and lag limits. Serve owns them all and
// waits for each before it returns.
//
// The outgoing queue is bounded in bytes (Config.QueueBytes per lane).
// At the bound a subscription waits, and so stops reading its channel:
// nothing is dropped, the log is the buffer. Once its oldest undelivered
// message is older than Config.MaxLag, the connection ends with
// slow-consumer and an error frame naming, per channel, the last cursor
// written, from which the client resumes. The timer goroutine also looks
// at the socket (conn.StallGuard) while written data may be waiting in
// it, so that neither the kernel's TCP_USER_TIMEOUT nor the heartbeat ends
// a client that is alive but not reading before MaxLag does.
//
// Concurrency: an Engine is safe for concurrent use; each Serve call
// serves one connection. The session implements registry.Peer, whose methods
// are safe to call from any goroutine at any time.
package session
