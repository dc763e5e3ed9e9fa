// Package store defines the seam between tether and its storage engines: an
// ordered, durable log of messages per channel.
//
// Everything above this package talks to a [Store] and nothing else. Cursors
// are opaque strings minted by the engine; callers compare them only for
// equality, pass them back to the engine, and never parse them. The one
// cursor every engine understands without having minted it is [Start], the
// position before the first message a channel ever had.
//
// Every engine must pass the conformance suite in package storetest.
//
// When its storage is full, an engine refuses appends at once with
// [ErrNoSpace] and goes on serving reads and waits; engines that can tell
// implement [Healther], which says so for /healthz.
//
// Concurrency: all methods of a Store are safe for concurrent use. Append
// returns only once the message is durable; concurrent appends may share one
// fsync (group commit), but each append's result is independent.
package store
