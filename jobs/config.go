package jobs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// The defaults of Config's settings, applied where a field is zero.
const (
	// DefaultHeartbeatInterval is Config.HeartbeatInterval's default.
	DefaultHeartbeatInterval = time.Second
	// DefaultLeaseIntervals is Config.LeaseIntervals' default: a lease
	// outlives two missed heartbeats.
	DefaultLeaseIntervals = 3
	// DefaultCancelGrace is Config.CancelGrace's default.
	DefaultCancelGrace = 5 * time.Second
	// DefaultFollowGrace is Config.FollowGrace's default.
	DefaultFollowGrace = 10 * time.Second
	// DefaultTimeout is Config.DefaultTimeout's default: a job's
	// per-attempt timeout when neither its Spec nor the Config gives one.
	DefaultTimeout = 10 * time.Minute
	// DefaultMaxAttempts is a job's MaxAttempts when its Spec gives none.
	DefaultMaxAttempts = 3
)

// Config holds a Service's settings; its dependencies are arguments of
// New. The zero value is valid.
type Config struct {
	// HeartbeatInterval is how often workers renew their leases, and half
	// of it is how often the Service sweeps for expired leases. Zero means
	// DefaultHeartbeatInterval (1s).
	HeartbeatInterval time.Duration
	// LeaseIntervals is the lease in heartbeat intervals. Zero means
	// DefaultLeaseIntervals (3).
	LeaseIntervals int
	// CancelGrace is how long a handler may run after its cancel was
	// pushed before the attempt is fenced and the job recorded canceled.
	// Zero means DefaultCancelGrace (5s).
	CancelGrace time.Duration
	// FollowGrace is how long a job with on_disconnect=cancel lives after
	// its last follower departed with no new one. Zero means
	// DefaultFollowGrace (10s).
	FollowGrace time.Duration
	// DefaultTimeout is a job's per-attempt timeout when its Spec gives
	// none. Zero means DefaultTimeout (10m).
	DefaultTimeout time.Duration
	// Backoff is the delay before attempt+1 after attempt failed. Nil
	// means DefaultBackoff: exponential from 1s, doubling, capped at 1m,
	// with up to 20% jitter. The delay is counted on Clock.
	Backoff func(attempt int) time.Duration
	// Clock is the time leases, the lease sweep, retries, attempt
	// deadlines and the cancel and follow graces are counted in. Nil means
	// the real time; tests pass a clock they move by hand
	// (jobstest.Clock).
	Clock Clock
	// NodeID names this node in logs and in the ids of its workers. Empty
	// means hostname:pid.
	NodeID string
	// RequireWorker makes Create refuse (ErrNoWorker) a job whose type no
	// worker attached to this node has announced, instead of storing it
	// with a warning (Job.Warning) to wait for one. Only this node's
	// workers count: leave it off where workers attach to other nodes.
	// False by default.
	RequireWorker bool
}

func (c *Config) setDefaults() error {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.LeaseIntervals == 0 {
		c.LeaseIntervals = DefaultLeaseIntervals
	}
	if c.CancelGrace == 0 {
		c.CancelGrace = DefaultCancelGrace
	}
	if c.FollowGrace == 0 {
		c.FollowGrace = DefaultFollowGrace
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.NodeID == "" {
		h, _ := os.Hostname()
		c.NodeID = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	switch {
	case c.HeartbeatInterval < 0 || c.CancelGrace < 0 || c.FollowGrace < 0 || c.DefaultTimeout < 0:
		return errors.New("tether: jobs: durations must not be negative")
	case c.LeaseIntervals < 1:
		return errors.New("tether: jobs: LeaseIntervals must be at least 1")
	}
	return nil
}

// DefaultBackoff is the Backoff used when Config.Backoff is nil: 1s after
// the first failed attempt, doubling, capped at 1m, plus up to 20% jitter so
// that jobs failed together do not retry together.
func DefaultBackoff(attempt int) time.Duration {
	d := time.Second
	for i := 1; i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	d = min(d, time.Minute)
	return d + time.Duration(rand.Int64N(int64(d/5)+1))
}
