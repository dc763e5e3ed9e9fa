// Package bench is tether's load harness: it drives real connections on
// loopback against a tether server and its peers (Centrifugo, Nchan,
// socket.io), each a separate process started and stopped by the harness,
// and reports the figures side by side with their ratios.
//
// Scenarios (see Config and each run* function):
//
//   - idle: N long-lived connections per transport (WebSocket, TCP, SSE,
//     long-poll); server RSS (VmRSS delta of the server's processes) and
//     goroutines per connection.
//   - fanout: one channel, S subscribers over each transport, one HTTP
//     publisher at a fixed rate and flat out; delivered messages/s,
//     publish-to-receive latency, and a check that no subscriber missed or
//     repeated a message. Over the measured window (first publish to the
//     last delivery): the server's user+system CPU (/proc/<pid>/stat of
//     its whole process tree) per million deliveries and in cores, the
//     harness's own CPU (its clients and publisher: is the load generator
//     the bound?), and the connections the server ended while their
//     clients were reading, by the server's reason where it gives one
//     (tether's tether_connection_ends_total, socket.io's disconnect log),
//     else by the close frame the client read (Centrifugo's 3012 "no
//     pong"); "ended by heartbeat" picks each system's heartbeat reason.
//   - publish: P concurrent HTTP publishers; acknowledged appends/s and ack
//     latency.
//   - churn: SSE clients that connect, read a little, leave and come back
//     with Last-Event-ID; connects/s, and a check that nothing was lost.
//   - detection: a WebSocket client resets (RST), closes (FIN), or goes
//     silent (its network namespace drops every packet); the time until
//     the server reports the end.
//
// The systems are tether, a second tether build (TetherBefore, to compare
// two builds of the server in one run), Centrifugo, Nchan and socket.io.
// The framed protocol on TCP is tether's own; long-poll is tether's and
// Nchan's; socket.io runs WebSocket only.
//
// The clients are the harness's own, lean so that they are not what a
// figure measures: rawWS for WebSocket, sseStream for SSE, rawPoster for
// the publish scenario's HTTP requests; net/http's client for long-poll
// and the single publisher of the other scenarios.
//
// Every message carries the same 64-byte payload (see payload.go) with a
// sequence number and its send time, so that the checks and latencies are
// computed the same way for every system.
//
// # Example
//
//	cfg, _ := bench.Preset("small")
//	cfg.TetherBin, cfg.Out = "/tmp/tether", "bench-out"
//	cfg.Systems = []bench.System{bench.Tether, bench.TetherBefore}
//	cfg.TetherBeforeBin = "/tmp/tether-before" // another build, measured alongside
//	_, err := bench.Run(ctx, cfg)              // tables on cfg.Stdout, progress on cfg.Stderr
//
// # Concurrency
//
// Run owns every goroutine and process it starts: each scenario waits for
// its clients to end before it returns, and each server process is stopped
// (and its temporary directory removed) before the next case begins. Every
// loop is bounded by a count and by a deadline.
package bench
