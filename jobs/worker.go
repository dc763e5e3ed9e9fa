package jobs

import (
	"context"
	"encoding/json"
)

// Worker is one attached worker connection. The protocol session calls its
// methods as frames arrive.
type Worker struct {
	s *Service
}

// AttachWorker attaches a worker connection that runs jobs of types, at
// most concurrency at a time (less than 1 means 1). id names the worker in
// running events; an empty id gets one from the node id. The Service starts
// assigning to it at once.
func (s *Service) AttachWorker(id string, types []string, concurrency int, c WorkerConn) (*Worker, error) {
	return nil, errNotYet
}

// Heartbeat renews the leases of the given attempts (job id → attempt). An
// attempt no longer running is fenced: its worker gets a Fenced push.
func (w *Worker) Heartbeat(ctx context.Context, attempts map[string]int) error { return errNotYet }

// Progress records a progress report of an attempt, or returns ErrFenced
// when the attempt is no longer the job's running attempt.
func (w *Worker) Progress(ctx context.Context, jobID string, attempt int, data json.RawMessage) error {
	return errNotYet
}

// Complete records how an attempt ended, or returns ErrFenced when the
// attempt is no longer the job's running attempt. It frees the slot.
func (w *Worker) Complete(ctx context.Context, jobID string, attempt int, o Outcome) error {
	return errNotYet
}

// Release hands a running attempt back (worker shutdown): the job is
// queued again at once, without counting the attempt. It frees the slot.
func (w *Worker) Release(ctx context.Context, jobID string, attempt int) error { return errNotYet }

// Drain stops assigning to this worker; what it runs continues.
func (w *Worker) Drain() {}

// Detach ends the worker: nothing more is assigned. departed means the
// connection ended without a release (it died or was cut off): its running
// attempts are retried at once instead of at lease expiry.
func (w *Worker) Detach(departed bool) {}
