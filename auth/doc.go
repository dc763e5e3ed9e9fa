// Package auth verifies tether's tokens and answers, in one place, what
// the holder of a token may do. Every transport (long-poll, SSE,
// WebSocket, TCP) and every HTTP route asks the same Principal.
//
// # Tokens
//
// A token is a JWT (RFC 7519) signed with HS256 (a shared secret,
// --token-secret-file) or RS256, ES256 or EdDSA (public keys in PEM or a
// JWKS document, --token-keys-file). The key decides the algorithm: a
// secret only verifies HS256, an RSA key only RS256, and so on; "none"
// and every other algorithm are refused. exp is required; exp and nbf get
// DefaultLeeway of clock skew; iss and aud are checked when configured. A
// token longer than DefaultMaxTokenBytes is refused before parsing.
//
// Claims:
//
//	{
//	  "sub": "alice",                  // user id, required
//	  "exp": 1767225600,               // required
//	  "tether": {
//	    "subscribe": ["news.>", "chat.*"], // channel patterns (see Pattern)
//	    "publish":   ["chat.*"],
//	    "jobs":      ["resize"],       // job types alice may create ("*": all)
//	    "worker":    ["resize"],       // job types this token may run ("*": all)
//	    "admin":     false             // the admin API; following/cancelling any job
//	  }
//	}
//
// A malformed pattern or job type makes the whole token invalid.
//
// The job channels "job.<id>" and the index "jobs" are written by the
// server alone: MayPublish denies them to everyone, Open included. A
// pattern whose first token is a wildcard (">", "*.x") does not grant
// reading them either; "job.>" or "jobs" must be named, or the reader
// must be the job's creator (MayFollowJob) or an admin.
//
// # Where tokens travel
//
// HTTP: "Authorization: Bearer <token>", else "?token=<token>" where a
// browser cannot set headers (EventSource, WebSocket); see
// TokenFromRequest. TCP: in the hello frame. The session core passes the
// string to Verifier.Verify.
//
// # Denials
//
// Every denial is an *Error with a stable Code: CodeUnauthorized (401: no
// token or an invalid one), CodeTokenExpired (401: genuine but expired;
// fetch a fresh token) and CodeForbidden (403: valid, but not allowed).
// HTTP answers carry the code in {"error": {"code", "message"}} and 401s a
// WWW-Authenticate header (WWWAuthenticate); WebSocket and TCP send an
// error frame with the code. A connection whose token expires without a
// refresh (CheckRefresh) ends with reason EndTokenExpired.
//
// # Open mode
//
// With neither a secret nor keys the Verifier is open: Verify returns
// Open() for anything, and Open may do everything except publish to
// server-owned channels. It is for development only.
//
// # Example
//
//	secret, err := auth.LoadSecretFile("/etc/tether/secret")
//	...
//	v, err := auth.NewVerifier(auth.Config{Secret: secret, Issuer: "https://login.example.com"})
//	...
//	p, err := v.VerifyRequest(r)
//	if err != nil { /* 401 with err's code */ }
//	if err := p.MayPublish(channel); err != nil { /* 403 forbidden */ }
//
// # Concurrency
//
// Verifier and Principal are immutable once built and safe for concurrent
// use by any number of goroutines. Nothing in this package starts a
// goroutine or keeps per-request state.
package auth
