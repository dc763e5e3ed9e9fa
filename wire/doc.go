// Package wire is tether's framed protocol (docs/protocol.md) as Go types:
// every frame a client, a worker or the server sends over WebSocket or TCP,
// the frame type names, the error codes, and the limits the protocol sets.
// It is the one place the wire is written down in Go, shared by the server,
// the Go client, the Go worker, tests and the load harness, so that none of
// them re-declares it with string literals. It imports the standard library
// only.
//
// The frames fall into four groups, each its own Go type:
//
//   - ClientFrame: what a client sends (subscribe, unsubscribe, publish,
//     ping, pong, hello, bye).
//   - WorkerRequest: what a worker sends on top (worker, job.heartbeat,
//     job.progress, job.done, job.release, drain).
//   - Server frames to every connection: Reply, ErrorFrame, Message, Gap,
//     Ping (ping and pong) and Shutdown.
//   - Server frames pushed to a worker: JobFrame (job) and JobSignal
//     (job.cancel, job.fenced).
//
// Every type carries its "type" field, and its JSON is exactly what the
// protocol documents: encoding one with Encode (or encoding/json) gives the
// bytes the server sends, and the decoders accept what it accepts.
//
//	b, _ := wire.Encode(wire.ClientFrame{ID: "c1", Type: wire.TypeSubscribe, Channel: "news", After: wire.Cursor("0")})
//	// {"id":"c1","type":"subscribe","channel":"news","after":"0"}
//
//	f, err := wire.DecodeServer(b) // a Reply, ErrorFrame, Message, ... by value
//	switch f := f.(type) {
//	case wire.Message:
//		fmt.Println(f.Channel, f.Cursor, string(f.Data))
//	case wire.Ping:
//		...
//	}
//
// The server decodes what it reads with DecodeRequest (one pass for a
// client frame, a second for a worker request); a client or worker decodes
// what the server sends with DecodeServer.
//
// Decoding follows the server's rules: a frame that is not one JSON object
// is ErrBadFrame (the stream cannot be trusted after it); a JSON object with
// a known field of the wrong JSON type is ErrBadField, with every other
// field decoded, so the request can still be answered by id. Unknown fields
// are ignored, so peers may add their own.
//
// Concurrency: the package holds no state; everything in it is safe for
// concurrent use.
package wire
