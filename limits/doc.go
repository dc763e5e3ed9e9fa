// Package limits bounds what clients may hold and how fast they may
// publish: connections in total, per user and per IP; subscriptions per
// connection and in total; publishes per second per user (a token
// bucket). Each limit has a documented default (Default*), a metric
// (tether_limit_*) and a stable refusal code.
//
// The session core calls, for every connection on every transport:
//
//	lease, err := lim.Admit(principal.Sub(), limits.IPKey(r.RemoteAddr))
//	if err != nil { /* refuse: err.(*limits.Error).Status(), code too_many_connections */ }
//	defer lease.Release()                  // idempotent; on every end path
//	if err := lease.Subscribe(); err != nil { /* too_many_subscriptions */ }
//	lease.Unsubscribe()
//	if err := lim.AllowPublish(principal.Sub()); err != nil {
//		// 429 rate_limited, Retry-After: err.(*limits.Error).RetryAfterHeader()
//	}
//
// Refusals (*Error) map to HTTP as Error.Status says: 503 when the server
// as a whole is full (connections, subscriptions: another node may have
// room), 429 for a user's or an address's own limits and for the publish
// rate (with Retry-After). On WebSocket and TCP they are error frames with
// the same codes.
//
// Memory is bounded: per-user and per-IP counts exist only for keys with
// live connections; the publish-rate buckets are capped at MaxRateKeys
// and idle (refilled) buckets are dropped as they are met, with no
// sweeper goroutine.
//
// Time comes from Config.Now, so tests drive the token bucket without
// sleeping.
//
// Concurrency: Limits, Lease and RateLimiter are safe for concurrent use.
// Limits guards its counters and every Lease with one mutex (l.mu); the
// RateLimiter has its own, never held together with l.mu. No goroutines
// are started.
package limits
