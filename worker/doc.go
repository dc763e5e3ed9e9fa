// Package worker runs tether jobs in a separate process: register a
// Handler per job type, then Run. It speaks the worker protocol of
// docs/protocol.md ("Workers") over WebSocket or plain TCP, so a worker in
// another language can be written from that document alone.
//
//	w, err := worker.New(worker.Config{URL: "ws://127.0.0.1:8080", Concurrency: 4})
//	if err != nil { ... }
//	w.Handle("resize", func(ctx context.Context, job *worker.Job) (any, error) {
//		var p struct{ URL string }
//		if err := json.Unmarshal(job.Payload, &p); err != nil {
//			return nil, err
//		}
//		job.Progress(ctx, map[string]int{"percent": 50})
//		return resize(ctx, p.URL) // honours ctx: cancelled jobs stop at once
//	})
//	err = w.Run(ctx) // until ctx ends: then drain, grace, hand back
//
// What the worker guarantees:
//
//   - The server assigns at most Concurrency jobs at a time; each runs on
//     its own goroutine with a fresh context.
//   - Leases: every HeartbeatInterval one job.heartbeat frame renews the
//     leases of all running attempts. After a reconnect the first frame
//     re-announces them.
//   - Cancel: a job.cancel frame pushed by the server cancels the
//     handler's context at once (context.Cause is ErrCanceled); when the
//     handler returns, the attempt is reported canceled, whatever it
//     returned.
//   - Fencing: a job.fenced frame (the server gave up on the attempt, e.g.
//     its handler ignored a cancel past the server's grace, or its lease
//     ran out) cancels the context with ErrFenced, drops the outcome and
//     frees the slot at once: the process, and whatever it loaded, takes
//     the next job. The handler's goroutine runs on until it returns.
//   - Connection loss: the worker reconnects with backoff. After a server's
//     shutdown notice running attempts go on (the server kept their
//     leases); after any other loss the server retries them elsewhere at
//     once, so the worker cancels them (ErrConnectionLost) and drops their
//     outcome, so that two attempts of a job do not run at once.
//   - Shutdown (Run's ctx ends, or Shutdown): a drain frame stops
//     assignments, running handlers get ShutdownGrace, then what still runs
//     is cancelled (ErrReleased) and handed back with job.release, which
//     queues it again at once instead of at lease expiry.
//
// Concurrency: Handle, Run and Shutdown may be called from any goroutine.
// The frames are the wire package's types; the connection is a
// client.Conn (which answers pings and notices a silent server).
//
// Goroutines, all owned by Run: two of the current connection (its reader
// and its watchdog), one heartbeating it, one per running handler, and one per finished attempt
// reporting its outcome until the server answers. Run returns once the
// connection is closed; handler goroutines that ignore their context are
// not waited for (their outcome is dropped).
package worker
