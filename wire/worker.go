package wire

import (
	"encoding/json"
	"time"
)

// WorkerRequest is a request a worker sends on top of the client frames:
// worker, job.heartbeat, job.progress, job.done, job.release or drain. All
// are requests (ID required). Which fields matter depends on Type; encoding
// omits the empty ones.
type WorkerRequest struct {
	ID   string `json:"id"`
	Type string `json:"type"`

	// worker: the worker's id (1 to MaxIDLen bytes of printable ASCII,
	// kept across reconnects), the job types it runs (1 to MaxWorkerTypes)
	// and how many attempts it runs at once (0 means 1).
	Worker      string   `json:"worker,omitempty"`
	Types       []string `json:"types,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`

	// Jobs is job.heartbeat's map of job id to attempt. It is sent even
	// when empty (an empty heartbeat tells the server the worker is alive):
	// only a nil map is omitted.
	Jobs map[string]int `json:"jobs,omitzero"`

	// Job and Attempt name the attempt of job.progress, job.done and
	// job.release. The attempt number is the fencing token.
	Job     string `json:"job,omitempty"`
	Attempt int    `json:"attempt,omitempty"`

	// Data is job.progress's report, any JSON value.
	Data json.RawMessage `json:"data,omitempty"`

	// job.done carries one of: Result (success; absent means null), Error
	// (the attempt failed) or Canceled (the handler stopped after a
	// job.cancel).
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Canceled bool            `json:"canceled,omitempty"`
}

// IsWorkerRequest reports whether t is one of the worker request types.
func IsWorkerRequest(t string) bool {
	switch t {
	case TypeWorker, TypeJobHeartbeat, TypeJobProgress, TypeJobDone, TypeJobRelease, TypeDrain:
		return true
	}
	return false
}

// JobFrame (type "job") assigns one attempt of a job to a worker. A
// repeat of an attempt the worker runs already is to be ignored.
type JobFrame struct {
	Type    string `json:"type"`
	Job     string `json:"job"`
	JobType string `json:"job_type"`
	// Payload is the client's JSON, null if none.
	Payload json.RawMessage `json:"payload"`
	Attempt int             `json:"attempt"`
	// Deadline is the attempt's timeout; past it the server sends a
	// job.cancel with reason timeout. Zero (absent): none.
	Deadline time.Time `json:"deadline,omitzero"`
	// LeaseUntil is the lease as granted; heartbeats extend it.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Channel is where clients follow the job, "job.<id>".
	Channel string `json:"channel"`
}

// JobSignal is a job.cancel or a job.fenced frame (Type tells which) about
// one attempt. Reason is one of the Cancel* or Fence* constants.
type JobSignal struct {
	Type    string `json:"type"`
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason,omitempty"`
}
