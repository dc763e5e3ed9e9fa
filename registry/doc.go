// Package registry is the lifecycle layer every transport shares
// (long-poll, SSE, WebSocket, TCP).
//
// Every connection is Opened in a Registry: it gets an id, a State, and
// exactly one end Reason (conn.Reason), which reaches the application
// (Config.OnDisconnect), the log and the metrics. The Registry lists live
// connections, closes one with a conn.CloseMode (graceful, reset or
// discard, see conn.CloseConn), admits a connection that presents a
// session key only after its predecessor's cleanup has returned, and shuts
// everything down over a snapshot of the live set (Registry.Shutdown).
//
// Package conn tells how a socket's peer left; this package records what
// that means for the application.
//
// # Example
//
//	reg, _ := registry.New(registry.Config{OnDisconnect: cleanup})
//	h, err := reg.Open(ctx, registry.OpenInfo{Transport: registry.TransportTCP}, peer)
//	if err != nil { ... } // shutting down, or the session key is still held
//	defer h.End(reason, noticed)
//
// # Concurrency contract
//
// All methods are safe for concurrent use. The Registry starts no
// goroutine; see Registry for the lock order.
package registry
