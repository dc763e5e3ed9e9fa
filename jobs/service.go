package jobs

import (
	"context"
	"errors"
)

var errNotYet = errors.New("tether: jobs: not yet implemented")

// Service runs jobs on one node: it creates, reads and cancels them, follows
// the index of every node's jobs, sweeps expired leases and dispatches
// runnable jobs to the workers attached to it.
type Service struct {
	cfg Config
}

// New returns a Service for cfg. It does nothing until Start.
func New(cfg Config) (*Service, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg}, nil
}

// Start recovers the jobs the store holds (reading the index, repairing a
// missing index entry) and starts following the index, sweeping leases and
// dispatching. ctx bounds the recovery only.
func (s *Service) Start(ctx context.Context) error { return errNotYet }

// Stop stops dispatching and sweeping, tells attached workers nothing new
// comes, and ends the Service's goroutines. It does not cancel jobs: their
// leases run out or their workers finish them through another node. It
// returns ctx's error if ctx ends first.
func (s *Service) Stop(ctx context.Context) error { return errNotYet }

// Create creates a job for spec and returns it with created set. With an
// idempotency key, the job's id derives from the key, so a retry of the
// same create returns the existing job with created false.
func (s *Service) Create(ctx context.Context, spec Spec, idempotencyKey string) (job Job, created bool, err error) {
	return Job{}, false, errNotYet
}

// Get returns the job with id, folded from its channel, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (Job, error) { return Job{}, errNotYet }

// List returns up to limit jobs, newest first, in state (empty: any state).
// limit < 1 means 100.
func (s *Service) List(ctx context.Context, state State, limit int) ([]Job, error) {
	return nil, errNotYet
}

// Cancel cancels the job with id: a queued or retrying job becomes canceled
// at once; a running one gets cancel_requested, its worker is told, and it
// becomes canceled when the handler returns or CancelGrace passes. A final
// job is returned unchanged.
func (s *Service) Cancel(ctx context.Context, id, reason string) (Job, error) {
	return Job{}, errNotYet
}

// Await returns the job once it is final, or ctx's cause with the job as
// last seen when ctx ends first.
func (s *Service) Await(ctx context.Context, id string) (Job, error) { return Job{}, errNotYet }

// Follow counts a follower of job id (an SSE, WebSocket or TCP subscriber
// of its channel). stop ends the follow; departed says the follower's
// connection really went away (not a shutdown, not a normal end). When the
// last follower of an on_disconnect=cancel job departed and no new one came
// within FollowGrace, the job is cancelled with ReasonClientGone. stop may
// be called more than once; only the first counts.
func (s *Service) Follow(id string) (stop func(departed bool)) { return func(bool) {} }
