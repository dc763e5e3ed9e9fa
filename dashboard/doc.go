// Package dashboard is tether's admin dashboard: a page at /admin, served
// from files embedded in the binary (plain HTML, CSS and JavaScript, no
// build step), and the two admin endpoints it reads:
//
//   - GET /v1/admin/snapshot: one Snapshot as JSON.
//   - GET /v1/admin/events: Server-Sent Events, one "snapshot" event per
//     Config.Interval (1 s), and a "shutdown" event when the node stops.
//
// Both need a token with the admin permission, checked by the session
// core like every permission of the node (Core.Authorize, OpAdmin); in
// open mode everyone is admin. The page itself loads without a token and
// asks for one (kept in sessionStorage) when the snapshot is refused.
//
// A Snapshot is whole, not a delta, and bounded whatever the load: the
// live connections counted by transport and user (registry.Census), how
// connections ended by reason, in total and per second over five minutes
// (registry.Ends), the slowest subscribed connections and their lag
// (session.Core.Consumers), the most subscribed channels with their
// presence, append rate and retention (read from the store for the first
// 20), jobs by state with the live ones and their workers
// (jobs.Service.Overview), and a few process figures from the metrics.
//
//	d, _ := dashboard.New(dashboard.Config{}, core, js, metrics)
//	mux.Handle("/admin/", d)
//	mux.Handle("/v1/admin/", d)
//
// # Concurrency
//
// A Dashboard is safe for concurrent use and starts no goroutine. One
// snapshot is built at a time, on the goroutine of a request that asks for
// it, and reused for half an interval, so any number of viewers cost one
// build per interval. Each event stream runs on its request's goroutine,
// at most Config.MaxStreams at once, and ends when its client goes, a
// write stalls for 10 s, or the registry's Shutdown begins.
package dashboard
