// Package workerproto plugs the jobs' worker frames (docs/protocol.md,
// "Workers") into the session core, from the jobs side: the core knows
// nothing of jobs, and this package is the one place that turns worker
// requests (worker, job.heartbeat, job.progress, job.done, job.release,
// drain) into jobs.Service calls and the Service's pushes (job,
// job.cancel, job.fenced) into frames. It also makes every subscriber of a
// job's channel, on any transport, a follower of the job.
//
//	svc, _ := jobs.New(jobs.Config{}, st, logger, registerer)
//	core, _ := session.New(session.Config{}, st, reg, log, session.Access{}, workerproto.New(svc))
//
// Concurrency: an Extension is safe for concurrent use. It starts no
// goroutine: the core calls Serve on each request's goroutine and Ended
// once per connection after every request returned; its map of workers
// is guarded by its mutex, each worker's state by its own.
package workerproto
