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
// Concurrency: an API is safe for concurrent use. A long-poll runs on the
// goroutine net/http gave it and starts none. An SSE stream's handler
// goroutine is the core's writer; the core adds its timer goroutine and
// the subscription's, and waits for both before the handler returns.
// conn.Watch owns the short-lived goroutines that classify departures.
package httpapi
