// Package httpapi is tether's HTTP API v1: publish to a channel, read it by
// long-poll or Server-Sent Events, resume anywhere by cursor, and the jobs
// routes. The contract, routes and error codes are in docs/api.md.
//
// Long-polls and SSE streams are sessions of the session core
// (session.Core): this package decodes their requests and frames the
// core's events, an SSE stream as text/event-stream (sseFormat), a
// long-poll as one JSON answer per page (pollPages); subscriptions, shared
// reads, the lag limit, heartbeats, the registry peer and the shutdown
// notice are the core's.
//
//	core, _ := session.New(session.Config{}, st, reg, logger, session.Access{Verifier: v, Limits: lim}, workerproto.New(svc))
//	api, _ := httpapi.New(httpapi.Config{}, core, svc, promRegistry)
//	mux.Handle("/", api)
//
// Access: every route but /healthz authenticates its request with the
// core (Core.Authenticate: Bearer, else ?token=) and asks Core.Authorize
// before it acts (access.go): 401 unauthorized or token_expired with
// WWW-Authenticate, 403 forbidden, and the limits' 429/503 with
// Retry-After. The API also serves the connections admin API (admin
// only) and GET /v1/channels/{channel}/presence. CORS, the Host check and
// the CSRF refusal are package origin's Guard, which the node wraps
// around everything.
//
// Every read and publish runs under conn.Watch, so a request's context ends
// only when its client is really gone (closed or reset, or silent past the
// TCP keepalive bound), never because the client merely half-closed after
// sending its request. A shutdown reaches long-polls and streams through
// the registry.Registry (Registry.Shutdown), never through the request's
// context.
//
// Idle requests without goroutines (HTTP/1.1): served through a Listener
// (the http.Server accepts on it and takes its BaseContext), a long-poll
// that must wait and an SSE stream hijack their connection once every
// check has passed. The long-poll parks in the session core
// (session.PollWait) and answers on the raw connection with the bytes
// net/http would have written, then hands the connection back to net/http
// through the Listener once its next request arrives; the SSE stream
// writes its head and then its events as HTTP/1.1 chunks from the
// session's on-demand writer (Session.StreamStart). Meanwhile no
// goroutine reads the connection: conn.Ready says when the client sent
// something, and hijacked reads it as net/http would (a reset ends the
// request, a FIN is probed as conn.Watch does, a pipelined request is
// kept, bounded). HTTP/2 cannot hijack, nor can a request that did not
// come through a Listener: they wait on their handler's goroutine, under
// conn.Watch, as before.
//
// Concurrency: an API is safe for concurrent use. A long-poll that
// answers at once, or waits over HTTP/2, runs on the goroutine net/http
// gave it; a parked one has none until it answers (a goroutine of the
// core's wakes it). An SSE stream over HTTP/2 runs its writer on its
// handler's goroutine; over HTTP/1.1 the handler returns once the stream
// runs. conn.Watch owns the short-lived goroutines that classify
// departures of requests that were not hijacked.
package httpapi
