// Package origin holds the rules for browsers: which pages (origins) may
// use tether cross-origin, which Host names it answers to, and the
// refusal of cross-site requests that could publish or create jobs in a
// visitor's name (CSRF).
//
// One Matcher, built from --allowed-origins, drives CORS for every HTTP
// route (Guard.Handler) and the WebSocket Origin check
// (Matcher.AllowWebSocket), so the two cannot disagree.
//
// Guard.Handler, wrapped around the whole HTTP API, does in order:
//
//  1. Host check (--allowed-hosts): a Host not listed gets 421 bad_host.
//     This defeats DNS rebinding, where a page on attacker.example, its
//     name re-pointed at 127.0.0.1, reaches a local server. Empty allows
//     any Host; a server listening on loopback only should default to
//     LoopbackHosts.
//  2. Every OPTIONS is answered here with 204: a CORS preflight from an
//     allowed origin (or the same origin) gets Access-Control-Allow-Origin,
//     -Methods, -Headers (Authorization, Content-Type, Idempotency-Key,
//     Last-Event-ID) and -Max-Age; from another origin 403 forbidden_origin.
//  3. A state-changing request (not GET or HEAD) sent by a browser
//     cross-origin (an Origin that is not the server's own, or
//     Sec-Fetch-Site cross-site/same-site) is refused with 403
//     forbidden_origin unless its origin is allowed AND the browser had to
//     preflight it (Authorization, Idempotency-Key or a non-form,
//     non-text/plain Content-Type). Form posts and text/plain bodies are
//     sent without a preflight, so they never reach a handler cross-origin,
//     even with "*" allowed. Requests with no Origin and no
//     Sec-Fetch-Site (curl, SDKs, servers) pass.
//  4. Responses to allowed origins carry Access-Control-Allow-Origin (the
//     origin itself, never "*") and Access-Control-Expose-Headers; every
//     response carries Vary: Origin. Credentials (cookies) are not
//     allowed: tether's tokens travel in Authorization or ?token=.
//
// Refusals have the body of every tether error:
// {"error": {"code": "forbidden_origin", "message": "..."}}.
//
// Example:
//
//	g, err := origin.New(origin.Config{
//		AllowedOrigins: []string{"https://app.example.com", "https://*.example.com"},
//		AllowedHosts:   []string{"tether.example.com"},
//	})
//	...
//	srv := &http.Server{Handler: g.Handler(api)}
//	// WebSocket handshake: if !g.Origins().AllowWebSocket(r) { 403 }
//
// Concurrency: Matcher and Guard are immutable after construction and
// safe for concurrent use; the handler keeps no state between requests.
package origin
