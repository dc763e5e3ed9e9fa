package jobs

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/tether-run/tether/store"
)

// Policy says what happens to a job when the client that created or follows
// it departs for good.
type Policy string

const (
	// Cancel cancels the job, with reason "client-gone", once the waiting
	// request departs or the last follower departs and FollowGrace passes.
	// It is the default.
	Cancel Policy = "cancel"
	// Detach keeps the job running and its result readable later.
	Detach Policy = "detach"
)

// State is where a job is in its life.
type State string

const (
	Queued    State = "queued"    // waiting for a worker
	Running   State = "running"   // claimed by a worker under a lease
	Retrying  State = "retrying"  // an attempt failed; the next waits for RetryAt
	Succeeded State = "succeeded" // final: the result is kept
	Failed    State = "failed"    // final: MaxAttempts attempts failed; kept, not deleted
	Canceled  State = "canceled"  // final: never retried
)

// Final reports whether s is an end state: nothing follows it.
func (s State) Final() bool { return s == Succeeded || s == Failed || s == Canceled }

// Valid reports whether s is one of the six states.
func (s State) Valid() bool {
	switch s {
	case Queued, Running, Retrying, Succeeded, Failed, Canceled:
		return true
	}
	return false
}

// Cancel reasons written in cancel_requested and canceled events.
const (
	ReasonAPI        = "api"         // POST /v1/jobs/{id}/cancel
	ReasonClientGone = "client-gone" // the waiting or following client departed
)

// Spec is what a client asks for.
type Spec struct {
	// Type selects the handler: 1-128 bytes of [A-Za-z0-9._:-].
	Type string
	// Payload is handed to the handler as is. Empty means null.
	Payload json.RawMessage
	// Timeout bounds each attempt. Zero means Config.DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is how many attempts may fail before the job fails.
	// Zero means DefaultMaxAttempts (3).
	MaxAttempts int
	// OnDisconnect is what a departure of the client does. Empty means
	// Cancel.
	OnDisconnect Policy
	// Sub is the creator's user id, from its token (never from the
	// request body); "" in open mode. The creator may follow and cancel
	// the job; and an idempotency key is the creator's own: the same key
	// from another user creates another job.
	Sub string
}

// Job is a job's state, folded from the events on its channel. Its JSON
// form is what GET /v1/jobs/{id} answers.
type Job struct {
	ID           string          `json:"id"`
	Channel      string          `json:"channel"`
	Type         string          `json:"type"`
	Payload      json.RawMessage `json:"payload,omitempty"`
	State        State           `json:"state"`
	Attempt      int             `json:"attempt"` // the current or last attempt; 0 before the first claim
	MaxAttempts  int             `json:"max_attempts"`
	Worker       string          `json:"worker,omitempty"` // the worker of the current or last attempt
	OnDisconnect Policy          `json:"on_disconnect"`
	// Sub is the user id of the job's creator ("" in open mode).
	Sub          string          `json:"sub,omitempty"`
	Timeout      time.Duration   `json:"-"` // JSON: "timeout" as a Go duration string
	Created      time.Time       `json:"created"`
	Started      time.Time       `json:"started,omitzero"` // when the current or last attempt was claimed
	Ended        time.Time       `json:"ended,omitzero"`
	LeaseUntil   time.Time       `json:"lease_until,omitzero"`
	RetryAt      time.Time       `json:"retry_at,omitzero"`
	Progress     json.RawMessage `json:"progress,omitempty"` // the latest progress report of the current attempt
	Result       json.RawMessage `json:"result,omitempty"`
	Error        string          `json:"error,omitempty"`
	CancelReason string          `json:"cancel_reason,omitempty"`
	// CancelRequested is set while a running attempt has been asked to stop.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// Cursor is the ID of the last event folded: the ExpectLatest of the
	// next write, and where a follower resumes.
	Cursor store.Cursor `json:"cursor"`
	// Warning is set by Create only, and not stored: no worker attached
	// to this node runs the job's type, so the job waits until one does
	// (WarnNoWorker).
	Warning string `json:"warning,omitempty"`

	released int       // attempts handed back, which do not count against MaxAttempts
	cancelAt time.Time // when cancel_requested was accepted
}

// MarshalJSON writes Timeout as a Go duration string ("10m0s").
func (j Job) MarshalJSON() ([]byte, error) {
	type plain Job
	return json.Marshal(struct {
		plain
		Timeout string `json:"timeout"`
	}{plain(j), j.Timeout.String()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (j *Job) UnmarshalJSON(b []byte) error {
	type plain Job
	var v struct {
		plain
		Timeout string `json:"timeout"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*j = Job(v.plain)
	if v.Timeout != "" {
		d, err := time.ParseDuration(v.Timeout)
		if err != nil {
			return err
		}
		j.Timeout = d
	}
	return nil
}

// Assignment is one attempt handed to a worker.
type Assignment struct {
	JobID   string
	Type    string
	Payload json.RawMessage
	// Attempt is the fencing token: every later call about this attempt
	// names it, and is refused with ErrFenced once the job moved on.
	Attempt int
	// Deadline is when the attempt times out (the job's Timeout after the
	// claim).
	Deadline time.Time
	// LeaseUntil is when the lease ends unless renewed by Heartbeat.
	LeaseUntil time.Time
	// Channel is the job's channel, "job." + JobID.
	Channel string
}

// WorkerConn is one worker connection as the Service drives it. The
// protocol session implements it; its methods push a frame and must not
// block long (queue and return).
type WorkerConn interface {
	// Assign pushes a job frame. An error means the worker will not run
	// it; the attempt is then retried at once.
	Assign(a Assignment) error
	// Cancel pushes a cancel frame: cancel the handler's context.
	Cancel(jobID string, attempt int, reason string)
	// Fenced pushes a fenced frame: the attempt is over for the server;
	// drop it and free the slot.
	Fenced(jobID string, attempt int, reason string)
}

// Outcome is how an attempt ended, as the worker reports it.
type Outcome struct {
	// Result is the handler's result on success.
	Result json.RawMessage
	// Error, when not empty, is the handler's failure: the job retries
	// or fails.
	Error string
	// Canceled reports that the handler returned after its context was
	// cancelled.
	Canceled bool
}

var (
	// ErrNotFound means no job has the id.
	ErrNotFound = errors.New("tether: job not found")
	// ErrFenced means an attempt is no longer the job's running attempt:
	// its progress or completion is refused.
	ErrFenced = errors.New("tether: job attempt fenced")
	// ErrBadSpec means a Spec (or a list filter) is not valid.
	ErrBadSpec = errors.New("tether: bad job spec")
	// ErrNoWorker means Create refused a job because no worker attached
	// to this node runs its type (Config.RequireWorker).
	ErrNoWorker = errors.New("tether: no worker runs this job type")
	// ErrStopped means the Service is not running.
	ErrStopped = errors.New("tether: jobs service stopped")
)

// ChannelPrefix starts every job channel's name: "job." + id.
const ChannelPrefix = "job."

// IndexChannel is the channel with one message per created job.
const IndexChannel = "jobs"
