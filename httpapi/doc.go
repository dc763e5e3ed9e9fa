// Package httpapi is tether's HTTP API v1: publish to a channel, read it by
// long-poll or Server-Sent Events, resume anywhere by cursor. The contract,
// routes and error codes are in docs/api.md.
//
// Every read and publish runs under conn.Watch, so a request's context ends
// only when its client is really gone (closed or reset, or silent past the
// TCP keepalive bound) or the server stops, never because the client merely
// half-closed after sending its request.
//
// Concurrency: an API is safe for concurrent use. It starts no goroutines of
// its own; each request's work runs on the goroutine net/http gave it, and
// conn.Watch owns the short-lived goroutines that classify departures.
package httpapi
