// Package jobs runs cancellable work on worker processes, each job's
// outcome recorded once, on top of the store.Store seam.
//
// A job is a channel "job.<id>": every state change, lease renewal,
// progress report and the result is one JSON event on it, so a client
// follows a job like any channel. Every write to a job channel is a
// conditional append (store.AppendOptions.ExpectLatest): the writer folds
// the channel into a Job, decides, and appends only if nothing moved the
// job since. store.ErrConflict means another writer (another node, another
// goroutine) came first; the writer re-folds and decides again. That gives
// at most one claim per attempt, fencing by attempt number, and one
// recorded outcome on any engine that passes the conformance suite.
//
// An index channel "jobs" holds one message per job, so every node learns
// of every job by following it.
//
// Time: leases, the lease sweep, retries and their backoff, attempt
// deadlines and the cancel and follow graces are counted on Config.Clock,
// the real time unless a test injects a clock it moves by hand
// (jobstest.Clock). The defaults of every setting are the Default*
// constants.
//
// Concurrency: all methods of Service and Worker are safe for concurrent
// use. A Service owns its goroutines (the index follower, the dispatcher,
// one cancel watcher per running attempt of a local worker, and its
// timers' callbacks, the lease sweep among them); Stop ends them all.
package jobs
