// Package conn tells an HTTP handler when its client is really gone, and
// how it left.
//
// net/http cancels r.Context() as soon as its background read of an
// HTTP/1.1 connection returns any error, EOF included. A client that sent
// its request and then shut down its sending side (shutdown(SHUT_WR), a
// TCP half-close) is still waiting for the answer, yet its long-poll is
// cancelled (golang/go#18527). And a client that vanishes without FIN or
// RST is noticed only when the kernel gives up, after minutes with Go's
// defaults.
//
// Watch gives the handler a context that net/http's cancellation does not
// reach directly. When net/http cancels, Watch looks at the socket
// (TCP_INFO, SO_ERROR, and the read error Listen's connections recorded):
//
//   - RST on an open connection: cancelled with ErrReset.
//   - keepalive or TCP_USER_TIMEOUT gave up: cancelled with ErrTimeout.
//   - FIN (CLOSE_WAIT): a half-close and a full close look the same, so
//     Watch sends a probe that stays valid HTTP (an interim
//     "102 Processing" before the response has started, the handler's
//     filler after, see SetFiller) and looks again within a round trip.
//     The peer's kernel answers RST if the socket is closed (ErrClosed) and
//     ACKs if it is only half-closed: then the handler keeps running, and
//     Watch keeps polling and probing with backoff to notice a later close.
//   - The connection is open: the cancellation came from the server side
//     (BaseContext, http.Server.ReadTimeout) and is passed on unchanged.
//
// context.Cause of the handler's context is then a *GoneError (or
// ErrShutdown, or net/http's own cause); ReasonOf turns it into a Reason.
//
// A peer that goes silent (no FIN, no RST) is noticed only by the kernel:
// Listen sets keepalive and TCP_USER_TIMEOUT so that it gives up within
// 10 s, idle or streaming (see KeepAlive for the arithmetic); the read
// then fails with ETIMEDOUT and the handler gets ErrTimeout.
//
// The connection registry (ids, end reasons, admission, shutdown) is
// package registry; this package works at the socket only.
//
// A peer that is alive but stopped reading is a different matter: its
// kernel keeps ACKing with a zero window. Linux (>= 5.11) still aborts it
// after TCP_USER_TIMEOUT; StallGuard lets the application's own lag limit
// decide instead (see KeepAlive and StallGuard).
//
// # Example
//
//	ln, err := conn.Listen(ctx, ":8080", conn.KeepAlive{})
//	if err != nil { ... }
//	srv := &http.Server{
//		Handler:     conn.Watch(longPoll, conn.WatchConfig{Shutdown: stopping}),
//		ConnContext: conn.ConnContext,
//	}
//	go srv.Serve(ln)
//
//	func longPoll(w http.ResponseWriter, r *http.Request) {
//		select {
//		case ev := <-events:
//			fmt.Fprint(w, ev)
//		case <-r.Context().Done():
//			log.Print("client left: ", conn.ReasonOf(context.Cause(r.Context())))
//		}
//	}
//
// # Concurrency contract
//
// Watch is safe for concurrent use by any number of requests. Per request
// it starts no goroutine until net/http cancels r.Context() or
// WatchConfig.Shutdown is done; each such goroutine exits when the end is
// classified or the handler returns, and Watch waits for it before its
// ServeHTTP returns, so none outlives the request. OnEnd runs on the
// handler's goroutine after that.
//
// The handler gets a wrapped http.ResponseWriter. Its methods may be
// called from one goroutine at a time, as net/http requires; internally a
// mutex serialises them with Watch's probes, and a probe never waits for a
// handler that is writing: the handler's write then serves as the probe.
// The wrapper implements http.Flusher, http.Hijacker, FlushError and
// Unwrap, so http.NewResponseController works. Writing to the unwrapped
// writer bypasses the mutex and is not allowed.
//
// # Limits
//
// Watch can only react when net/http notices something, which it does
// only after the request body was read to EOF: read the body of a POST
// before waiting. HTTP/2 requests, connections not from Listen or a
// *net.TCPConn, and systems without TCP_INFO get net/http's cancellation
// with ReasonCanceled. Before the response has started, at most four 1xx
// probes are sent per request (older Go clients failed after five), none
// to HTTP/1.0 clients; a client that wrongly takes a 102 for its final
// response, and half-closes, would be confused by them. After the response
// has started only a filler can probe; without one, a fully closed peer is
// noticed only when the handler writes. When our data is in flight, an RST
// cannot be told from one it provoked, and is reported as ErrClosed.
package conn
