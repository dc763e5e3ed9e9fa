// Package tether is a tether node as a Go library: durable channels read by
// cursor over long-poll, Server-Sent Events, WebSocket and plain TCP;
// departures noticed within bounds and told apart (closed, half-closed,
// reset, silent); jobs with cancellation, leases and fencing; and one
// graceful shutdown for all of it. The tether binary (cmd/tether) is a
// thin user of this package.
//
// # Embedding
//
// New builds a Node on its store (the embedded Pebble engine in
// Config.DataDir by default; Config.NATS or WithStore for others).
// Handler serves every HTTP route, /v1/ws included, so it mounts next to
// an application's own routes:
//
//	node, err := tether.New(tether.Config{DataDir: "data"}, tether.WithLogger(logger))
//	if err != nil { ... }
//	if err := node.Start(ctx); err != nil { ... } // the jobs service
//	mux := http.NewServeMux()
//	mux.Handle("/v1/", node.Handler())
//	mux.HandleFunc("/", app)
//	ln, err := tether.Listen(ctx, ":8080", conn.KeepAlive{})
//	srv := &http.Server{Handler: mux, ConnContext: tether.ConnContext}
//	go srv.Serve(ln)
//	...
//	node.Shutdown(ctx) // tells every client, drains, closes the store
//	srv.Shutdown(ctx)
//
// Or let the Node listen itself: set Config.Addr (and Config.TCPAddr for
// the framed TCP protocol) and call Start, or call Serve and ServeTCP with
// listeners of your own. Publish and Read work in process, and Jobs gives
// the jobs service (create, cancel, in-process workers).
//
// # Access control
//
// With Config.Tokens (a secret or public keys) every connection and
// request needs a JWT, and the session core decides every permission in
// one place for all four transports (package session, Core.Authorize):
// who may read and publish which channels, create, follow and cancel
// which jobs, run which job types as a worker, and use the admin API.
// Config.AllowedOrigins drives CORS and the WebSocket Origin check,
// Config.AllowedHosts the Host check, Config.Limits the connection,
// subscription and publish-rate limits. Without tokens the node runs
// open, for development, and Start refuses a non-loopback address
// unless Config.Insecure. README, "Security", has the whole picture.
//
// # What a Node notices on someone else's server
//
// Departure detection of long-polls and SSE streams looks at the socket
// under each request. It is complete only on a listener from Listen with
// http.Server.ConnContext set to ConnContext, as Start and Serve do:
//
//   - Listen + ConnContext: a client that half-closes (sends its request,
//     shuts down its sending side and waits) keeps its long-poll; a close,
//     a reset and a silent peer are told apart; the kernel gives up on a
//     silent peer within 10 s (Config.KeepAlive).
//   - Your own TCP listener, ConnContext set: the same distinctions, but a
//     reset and a timeout are told apart only through SO_ERROR, and a
//     silent long-poll or SSE client is noticed only after your listener's
//     keepalive gives up (net/http's defaults: minutes).
//   - No ConnContext, HTTP/2, or a connection that is not TCP (TLS
//     terminated by net/http included): a long-poll or SSE request ends
//     when net/http cancels it, with reason canceled; a half-closed client
//     is cancelled too (golang/go#18527).
//
// WebSocket and TCP connections carry their own heartbeat, so a silent
// peer is ended within Config.Session's PingTimeout (10 s) on any
// listener.
//
// # Concurrency
//
// A Node's methods are safe for concurrent use. New starts no goroutine;
// Start starts the jobs service's and one accept loop per listener, and
// Shutdown ends them all before it returns. Each connection's goroutines
// belong to its transport and end when the connection ends, which
// Shutdown waits for.
package tether
