package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tether-run/tether/wire"
)

// Job is one attempt of a job, as the server assigned it.
type Job struct {
	ID      string          // the job's id
	Type    string          // its type, which chose the Handler
	Payload json.RawMessage // what the client gave at creation, as JSON
	// Attempt numbers the attempts of this job from 1. It is the fencing
	// token: the server refuses reports that name an attempt that is no
	// longer current.
	Attempt int
	// Deadline is when this attempt times out (the job's "timeout" from
	// its start); the handler's ctx carries it. Zero: none.
	Deadline time.Time
	// Channel is the job's channel ("job.<id>"): clients follow its
	// state, progress and result there.
	Channel string

	w *Worker
}

// Progress reports data (marshalled to JSON) as the job's progress: a
// progress event on its channel, once the server answered. While the
// worker is reconnecting it waits for the connection, at most until ctx
// ends. It returns ErrFenced when this attempt is no longer current,
// ErrNotConnected when the connection is lost meanwhile or the worker
// stopped.
func (j *Job) Progress(ctx context.Context, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("tether: worker: progress data: %w", err)
	}
	l := j.w.waitLink(ctx)
	if l == nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return ErrNotConnected
	}
	err = l.request(ctx, wire.WorkerRequest{
		Type: wire.TypeJobProgress, Job: j.ID, Attempt: j.Attempt, Data: json.RawMessage(b),
	})
	if errors.Is(err, errLinkDown) {
		return ErrNotConnected
	}
	return err
}

// outcome builds the job.done frame for a handler's return. A handler that
// returned an error after a job.cancel frame is reported canceled (the
// server records the job canceled, or, for a cancel of its timeout, the
// attempt failed); one that returned a result despite the cancel reports
// the result, which the server keeps: the work was done.
func outcome(job *Job, res any, err error, canceled bool) wire.WorkerRequest {
	done := wire.WorkerRequest{Type: wire.TypeJobDone, Job: job.ID, Attempt: job.Attempt}
	switch {
	case err != nil && canceled:
		done.Canceled = true
	case err != nil:
		done.Error = errText(err)
	default:
		b, merr := json.Marshal(res)
		if merr != nil {
			done.Error = "result is not JSON: " + merr.Error()
		} else {
			done.Result = json.RawMessage(b)
		}
	}
	return done
}
