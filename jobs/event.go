package jobs

import (
	"encoding/json"
	"time"

	"github.com/tether-run/tether/store"
)

// Event names: the "event" field of every message on a job channel.
const (
	evQueued          = "queued"
	evRunning         = "running"
	evLease           = "lease"
	evProgress        = "progress"
	evCancelRequested = "cancel_requested"
	evRetrying        = "retrying"
	evReleased        = "released"
	evSucceeded       = "succeeded"
	evFailed          = "failed"
	evCanceled        = "canceled"
)

// event is one message on a job channel. Which fields are set depends on
// Event; docs/api.md lists them.
type event struct {
	Event      string          `json:"event"`
	Job        *jobHead        `json:"job,omitempty"`
	Attempt    int             `json:"attempt,omitempty"`
	Worker     string          `json:"worker,omitempty"`
	LeaseUntil time.Time       `json:"lease_until,omitzero"`
	Data       json.RawMessage `json:"data,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Error      string          `json:"error,omitempty"`
	RetryAt    time.Time       `json:"retry_at,omitzero"`
	Result     json.RawMessage `json:"result,omitempty"`
}

// jobHead is the job as the queued event records it.
type jobHead struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Payload      json.RawMessage `json:"payload"`
	Timeout      string          `json:"timeout"`
	MaxAttempts  int             `json:"max_attempts"`
	OnDisconnect Policy          `json:"on_disconnect"`
	Created      time.Time       `json:"created"`
	Sub          string          `json:"sub,omitempty"`
}

// indexEntry is one message on the index channel.
type indexEntry struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// fold applies the messages of a job channel, oldest first, to j. A message
// that is not an event, or an event that does not fit the state (anything
// after a final one, a lease of another attempt), is skipped: the
// conditional appends never write one, so only a foreign writer could.
func fold(j *Job, msgs []store.Message) {
	for _, m := range msgs {
		var e event
		if json.Unmarshal(m.Data, &e) == nil {
			apply(j, &e, m.Time)
		}
		j.Cursor = m.ID
	}
}

// apply applies one event accepted by the store at t.
func apply(j *Job, e *event, t time.Time) {
	if j.State.Final() {
		return
	}
	if e.Event != evQueued && j.State == "" {
		return // no queued event: not a job
	}
	switch e.Event {
	case evQueued:
		if j.State != "" || e.Job == nil {
			return
		}
		h := e.Job
		j.ID, j.Type, j.Payload = h.ID, h.Type, h.Payload
		j.Channel = ChannelPrefix + h.ID
		j.MaxAttempts, j.OnDisconnect, j.Sub = h.MaxAttempts, h.OnDisconnect, h.Sub
		j.Timeout, _ = time.ParseDuration(h.Timeout)
		j.Created = h.Created
		if j.Created.IsZero() {
			j.Created = t
		}
		j.State = Queued
	case evRunning:
		if j.State == Running || e.Attempt <= j.Attempt {
			return
		}
		j.State, j.Attempt, j.Worker = Running, e.Attempt, e.Worker
		j.Started, j.LeaseUntil, j.RetryAt = t, e.LeaseUntil, time.Time{}
		j.Progress, j.CancelRequested, j.CancelReason, j.cancelAt = nil, false, "", time.Time{}
	case evLease:
		if j.running(e.Attempt) {
			j.LeaseUntil = e.LeaseUntil
		}
	case evProgress:
		if j.running(e.Attempt) {
			j.Progress = e.Data
		}
	case evCancelRequested:
		if j.running(e.Attempt) && !j.CancelRequested {
			j.CancelRequested, j.CancelReason, j.cancelAt = true, e.Reason, t
		}
	case evRetrying:
		if j.running(e.Attempt) {
			j.State, j.Error, j.RetryAt, j.LeaseUntil = Retrying, e.Error, e.RetryAt, time.Time{}
		}
	case evReleased:
		if j.running(e.Attempt) {
			j.State, j.LeaseUntil = Queued, time.Time{}
			j.released++
		}
	case evSucceeded:
		if j.running(e.Attempt) {
			j.State, j.Result, j.Ended, j.LeaseUntil = Succeeded, e.Result, t, time.Time{}
		}
	case evFailed:
		if j.running(e.Attempt) || (j.State == Retrying && e.Attempt == j.Attempt) {
			j.State, j.Error, j.Ended, j.LeaseUntil, j.RetryAt = Failed, e.Error, t, time.Time{}, time.Time{}
		}
	case evCanceled:
		if e.Attempt == j.Attempt {
			j.State, j.CancelReason, j.Ended = Canceled, e.Reason, t
			j.LeaseUntil, j.RetryAt = time.Time{}, time.Time{}
		}
	}
}

// running reports whether attempt is the job's running attempt: the
// fencing check every write from a worker passes through.
func (j *Job) running(attempt int) bool { return j.State == Running && j.Attempt == attempt }

// failures is how many attempts failed so far, the current one included
// when it is running: released attempts do not count.
func (j *Job) failures() int { return j.Attempt - j.released }

// runnable reports whether a worker may claim the job at now.
func (j *Job) runnable(now time.Time) bool {
	return j.State == Queued || (j.State == Retrying && !now.Before(j.RetryAt))
}
