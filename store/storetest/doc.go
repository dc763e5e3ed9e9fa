// Package storetest is the conformance suite every tether storage engine must
// pass: one exported entry point, [Run], that exercises an engine through the
// [store.Store] interface alone.
//
// An engine package wires itself in from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Engine{
//			Open: func(t testing.TB, dir string, opts storetest.Options) store.Store {
//				s, err := myengine.Open(myengine.Config{Dir: dir, Retention: opts.Retention})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//		})
//	}
//
// Package jobs, built on this interface, has its own cases
// (jobstest.RunConformance), which every engine's tests run too; this
// suite depends on nothing above package store.
//
// The suite assumes nothing about how an engine stores data. Cursors are
// compared only for equality and never parsed. Time-based behaviour
// (retention by age, the idempotency dedup window) is tested with real, short
// durations and by polling a condition against a deadline, because not every
// engine can take an injected clock. Engine-specific behaviour (fake clocks,
// crash recovery, key layout) belongs in the engine's own tests.
//
// # Contract the suite pins down
//
// Beyond what the doc comments of package store say, the suite fixes these
// points so that every engine behaves the same:
//
//   - Read with a limit below 1 is an error. A limit up to 1000 is honoured
//     exactly: a page holds min(limit, available) messages.
//   - Read's Next is the ID of the last message returned, or the channel's
//     Latest when none were. A reader whose every unread message was removed
//     by retention therefore gets Gap=true once and moves on to Latest.
//   - Wait returns at once when Latest is after the cursor, even if retention
//     has since removed what followed the cursor: the Read that follows
//     reports the gap.
//   - Close wakes blocked Waits, which return ErrClosed; a second Close
//     returns ErrClosed.
//   - An Append whose ctx is done before it starts returns
//     context.Cause(ctx) and appends nothing.
//   - Garbage cursors (the empty string, letters, signs, spaces, NUL, very
//     long strings) give ErrBadCursor from Read and Wait. A cursor minted by
//     a different store for a channel that has fewer messages in this one
//     gives ErrCursorAhead or ErrBadCursor: engines that can recognise a
//     foreign cursor may reject it as bad, engines that cannot must see that
//     it is ahead. Either way it must not read.
//   - An idempotency key is identified by its bytes and its channel only;
//     the data of a duplicate append is ignored.
//
// # Concurrency
//
// Run starts every case as a parallel subtest, each with its own stores in
// its own t.TempDir(), so Engine.Open must be safe to call concurrently for
// different directories. Run closes every store it opens.
package storetest
