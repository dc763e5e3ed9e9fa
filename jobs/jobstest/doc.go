// Package jobstest is an in-process worker for tests of package jobs and of
// what is built on it: a real jobs.WorkerConn that runs handlers on
// goroutines, heartbeats its attempts and reports outcomes through a
// jobs.Worker, as the protocol's worker sessions do over a connection.
//
// It is for tests: it records what it was told (assignments, cancels,
// fences, refused writes) so that tests can check them, and it can be
// paused to play a worker that stopped (SIGSTOP) past its lease.
//
// The package also holds Clock, a jobs.Clock moved by hand, and
// RunConformance, the job cases every storage engine must pass.
package jobstest
