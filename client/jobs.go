package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tether-run/tether/wire"
)

var (
	// ErrNoHTTP: the client has no HTTP API base (a tcp:// URL without
	// Config.HTTPURL), which jobs need.
	ErrNoHTTP = errors.New("tether: client: no HTTP URL for the jobs API (set Config.HTTPURL)")
	// ErrJobCanceled: the job ended canceled (JobError.Reason says by
	// whom: api, client-gone).
	ErrJobCanceled = errors.New("tether: job canceled")
)

// JobError is a job that ended without a result: failed (Message is its
// last error) or canceled (errors.Is(err, ErrJobCanceled); Reason is the
// cancel's reason).
type JobError struct {
	ID      string
	State   string // "failed" or "canceled"
	Attempt int
	Message string
	Reason  string
}

func (e *JobError) Error() string {
	if e.State == "canceled" {
		return fmt.Sprintf("tether: job %s canceled (%s)", e.ID, e.Reason)
	}
	return fmt.Sprintf("tether: job %s failed after attempt %d: %s", e.ID, e.Attempt, e.Message)
}

// Is makes errors.Is(err, ErrJobCanceled) hold for a canceled job.
func (e *JobError) Is(target error) bool { return target == ErrJobCanceled && e.State == "canceled" }

// JobOptions are the options of a job (docs/api.md, "Jobs") and of
// following it.
type JobOptions struct {
	// Timeout per attempt. Zero: the server's default (10m).
	Timeout time.Duration
	// MaxAttempts that may fail before the job fails. Zero: the server's
	// default (3).
	MaxAttempts int
	// OnDisconnect is "cancel" (the server's default) or "detach": whether
	// the job is cancelled when this client departs for good.
	OnDisconnect string
	// IdempotencyKey makes creating the job idempotent (the job's id
	// derives from it). Empty: a fresh random key per call, so that the
	// client's own retries create one job.
	IdempotencyKey string
	// Follow tells the server the caller is about to follow the job's
	// channel (POST /v1/jobs?follow=true): an on_disconnect "cancel" job
	// that no follower reaches within the server's follow grace is then
	// canceled, so a client that dies between the create and its
	// subscription leaves nothing running. Run sets it.
	Follow bool
	// OnCreated is called with the job's id once it is created, on Run's
	// goroutine (before it follows the job). Nil: none.
	OnCreated func(JobRef)
	// OnProgress receives each progress report of the running attempt, on
	// the client's delivery goroutine. Nil: none.
	OnProgress func(data json.RawMessage)
	// OnEvent receives every event on the job's channel (queued, running,
	// lease, progress, ..., the final one), on the delivery goroutine.
	// Nil: none.
	OnEvent func(JobEvent)
}

// JobEvent is one event on a job's channel (docs/api.md, "Events on the
// job channel").
type JobEvent struct {
	Event   string          `json:"event"`
	Attempt int             `json:"attempt"`
	Data    json.RawMessage `json:"data"`   // progress
	Result  json.RawMessage `json:"result"` // succeeded
	Error   string          `json:"error"`  // retrying, failed
	Reason  string          `json:"reason"` // cancel_requested, released, canceled
	// Raw is the whole event.
	Raw json.RawMessage `json:"-"`
}

// JobRef names a created job.
type JobRef struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
}

// Jobs creates and follows jobs (docs/api.md, "Jobs"): over HTTP for
// create and cancel, over the client's connection for following.
type Jobs struct{ c *Client }

// Jobs returns the client's jobs API.
func (c *Client) Jobs() *Jobs { return &Jobs{c: c} }

// Create stores a job and returns its id, without waiting for it. A
// failure to get an answer is retried with the same idempotency key until
// ctx ends, so the job is created once.
func (j *Jobs) Create(ctx context.Context, jobType string, payload any, opts JobOptions) (JobRef, error) {
	c := j.c
	if c.ep.http == "" {
		return JobRef{}, ErrNoHTTP
	}
	spec := map[string]any{"type": jobType}
	if payload != nil {
		raw, err := marshalData(payload)
		if err != nil {
			return JobRef{}, err
		}
		spec["payload"] = raw
	}
	if opts.Timeout > 0 {
		spec["timeout"] = opts.Timeout.String()
	}
	if opts.MaxAttempts > 0 {
		spec["max_attempts"] = opts.MaxAttempts
	}
	if opts.OnDisconnect != "" {
		spec["on_disconnect"] = opts.OnDisconnect
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return JobRef{}, err
	}
	key := opts.IdempotencyKey
	if key == "" {
		key = newKey()
	}
	h := http.Header{"Idempotency-Key": {key}}
	path := "/v1/jobs"
	if opts.Follow {
		path += "?follow=true"
	}
	for try := 0; ; try++ {
		var ref JobRef
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		_, err := doHTTP(rctx, c.cfg.HTTPClient, "POST", c.ep.http+path, h, body, &ref)
		cancel()
		var ef *wire.ErrorFrame
		if err == nil || errors.As(err, &ef) && !ef.Code.Retryable() || ctx.Err() != nil {
			if ctx.Err() != nil {
				return JobRef{}, context.Cause(ctx)
			}
			return ref, err
		}
		t := time.NewTimer(c.backoff(try))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return JobRef{}, context.Cause(ctx)
		}
	}
}

// Cancel cancels job id (POST /v1/jobs/{id}/cancel): a queued job at once,
// a running one by its worker's handler context, which the server cancels
// at once.
func (j *Jobs) Cancel(ctx context.Context, id string) error {
	c := j.c
	if c.ep.http == "" {
		return ErrNoHTTP
	}
	_, err := doHTTP(ctx, c.cfg.HTTPClient, "POST", c.ep.http+"/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil, nil)
	return err
}

// Get returns the job as GET /v1/jobs/{id} answers it (docs/api.md).
func (j *Jobs) Get(ctx context.Context, id string) (json.RawMessage, error) {
	c := j.c
	if c.ep.http == "" {
		return nil, ErrNoHTTP
	}
	var raw json.RawMessage
	_, err := doHTTP(ctx, c.cfg.HTTPClient, "GET", c.ep.http+"/v1/jobs/"+url.PathEscape(id), nil, nil, &raw)
	return raw, err
}

// Run creates a job of jobType with payload, follows its channel (each
// progress report to opts.OnProgress) and returns its result once it
// succeeded; a *JobError once it failed or was canceled. When ctx ends
// first, Run cancels the job on the server (its worker's handler context
// ends at once) and returns ctx's error.
//
// Following is a subscription of this client: it resumes across
// reconnects, and for a job with on_disconnect "cancel" (the default) the
// server cancels the job when this client departs for good.
func (j *Jobs) Run(ctx context.Context, jobType string, payload any, opts JobOptions) (json.RawMessage, error) {
	opts.Follow = true
	ref, err := j.Create(ctx, jobType, payload, opts)
	if err != nil {
		return nil, err
	}
	if opts.OnCreated != nil {
		opts.OnCreated(ref)
	}
	type outcome struct {
		result json.RawMessage
		err    error
	}
	done := make(chan outcome, 1)
	final := false // the delivery goroutine's
	handler := func(ev Event) {
		if final {
			return
		}
		switch ev.Kind {
		case EventError:
			final = true
			done <- outcome{err: ev.Err}
			return
		case EventMessage:
		default:
			return // a gap: the final event is kept in any case
		}
		var je JobEvent
		if json.Unmarshal(ev.Data, &je) != nil {
			return
		}
		je.Raw = ev.Data
		if opts.OnEvent != nil {
			opts.OnEvent(je)
		}
		switch je.Event {
		case "progress":
			if opts.OnProgress != nil {
				opts.OnProgress(je.Data)
			}
		case "succeeded":
			final = true
			done <- outcome{result: je.Result}
		case "failed":
			final = true
			done <- outcome{err: &JobError{ID: ref.ID, State: "failed", Attempt: je.Attempt, Message: je.Error}}
		case "canceled":
			final = true
			done <- outcome{err: &JobError{ID: ref.ID, State: "canceled", Attempt: je.Attempt, Reason: je.Reason}}
		}
	}
	sub, err := j.c.Subscribe(ctx, ref.Channel, SubscribeOptions{After: "0", Handler: handler})
	if err != nil {
		if ctx.Err() != nil {
			j.cancelAfter(ref.ID)
		}
		return nil, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), j.c.cfg.RequestTimeout)
		defer cancel()
		sub.Unsubscribe(uctx)
		j.c.Handle(ref.Channel, nil)
	}()
	select {
	case o := <-done:
		return o.result, o.err
	case <-ctx.Done():
		j.cancelAfter(ref.ID)
		return nil, context.Cause(ctx)
	}
}

// cancelAfter cancels a job whose caller gave up (its ctx ended), on a
// context of its own.
func (j *Jobs) cancelAfter(id string) {
	ctx, cancel := context.WithTimeout(j.c.ctx, j.c.cfg.RequestTimeout)
	defer cancel()
	if err := j.Cancel(ctx, id); err != nil {
		j.c.log.Warn("cancelling job failed", "job", id, "err", err)
	}
}
