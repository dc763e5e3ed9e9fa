package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/session"
)

// Job error codes (docs/api.md).
const (
	CodeBadRequest = "bad_request"
	CodeNoWorker   = "no_worker"
)

// jobSpec is the body of POST /v1/jobs.
type jobSpec struct {
	Type         string          `json:"type"`
	Payload      json.RawMessage `json:"payload"`
	Timeout      string          `json:"timeout"`
	MaxAttempts  int             `json:"max_attempts"`
	OnDisconnect jobs.Policy     `json:"on_disconnect"`
}

// jobRef answers a create that did not wait for the end.
type jobRef struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	// Warning: no worker runs the job's type (jobs.Job.Warning).
	Warning string `json:"warning,omitempty"`
}

// createJob serves POST /v1/jobs. Without ?wait it answers 201 with the
// job's id and channel once the job is stored. With ?wait=D it holds the
// request until the job is final (200, the job with its result or error)
// or D runs out or the server stops (202, id and channel: follow the
// channel or GET the job later).
//
// ?follow=true says the creator is about to follow the job's channel: the
// create counts as a follower until its answer is written, then departs,
// so an on_disconnect=cancel job that no follower reaches within the
// follow grace is canceled as if its follower had left. Without it, a
// client that goes away between the answer and its subscription (a tab
// closed at that moment) would leave the job running for nobody.
//
// The request's context is conn.Watch's: it ends only when the client is
// really gone. A client that closes or resets its connection, or goes
// silent (timeout), while waiting on an on_disconnect=cancel job cancels
// it (reason client-gone). A half-closed client is still there and gets
// its answer; a server stop is not the client's departure.
func (a *API) createJob(w http.ResponseWriter, r *http.Request) {
	p := a.authenticate(w, r)
	if p == nil {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if e := decodeIdempotencyKey(key); e != nil {
		writeError(w, e)
		return
	}
	var wait time.Duration
	if q := r.URL.Query(); q.Has("wait") {
		d, ok := parseWait(q.Get("wait"))
		if !ok || d < 0 || d > a.limits.maxWait {
			writeError(w, errorf(http.StatusBadRequest, CodeBadWait,
				"wait must be a duration (\"30s\") or seconds, at most "+a.limits.maxWait.String()))
			return
		}
		wait = d
	}
	follow := false
	if q := r.URL.Query(); q.Has("follow") {
		v, err := strconv.ParseBool(q.Get("follow"))
		if err != nil {
			writeError(w, errorf(http.StatusBadRequest, CodeBadRequest, "follow must be true or false"))
			return
		}
		follow = v
	}
	spec, e := a.decodeJobSpec(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	if !a.authorize(w, r, p, session.Act{Op: session.OpCreateJob, JobType: spec.Type}) {
		return
	}
	spec.Sub = p.Sub() // the creator, from the token alone
	ctx := r.Context()
	// The create itself is not cut short by the client leaving: a job
	// half-created (stored but not indexed) would be lost to other nodes.
	// What the departure means is decided below.
	job, created, err := a.jobs.Create(context.WithoutCancel(ctx), spec, key)
	if err != nil {
		a.writeJobError(w, r, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if follow && job.OnDisconnect == jobs.Cancel && !job.State.Final() {
		// Departs once the answer is written (and on every path out).
		defer a.jobs.Follow(job.ID)(true)
	}
	ref := jobRef{ID: job.ID, Channel: job.Channel, Warning: job.Warning}
	if wait == 0 {
		writeJSON(w, http.StatusCreated, ref)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() { // a Shutdown answers the wait with 202 at once
		select {
		case <-a.core.Registry().Closing():
			cancel()
		case <-stopped:
		}
	}()
	final, err := a.jobs.Await(wctx, job.ID)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, final)
	case ctx.Err() != nil:
		if final.ID != "" {
			job = final
		}
		a.clientLeftWait(ctx, job)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		writeJSON(w, http.StatusAccepted, ref) // wait ran out, or the server is stopping
	default:
		a.writeJobError(w, r, err)
	}
}

// clientLeftWait acts on the departure of a client that waited on job.
func (a *API) clientLeftWait(ctx context.Context, job jobs.Job) {
	reason := conn.ReasonOf(context.Cause(ctx))
	if !departure(reason) || job.OnDisconnect != jobs.Cancel || job.State.Final() {
		return
	}
	if _, err := a.jobs.Cancel(context.WithoutCancel(ctx), job.ID, jobs.ReasonClientGone); err != nil {
		a.log.Warn("job cancel after client departure failed", "job", job.ID, "err", err)
		return
	}
	a.log.Info("job canceled: its waiting client left", "job", job.ID, "reason", string(reason))
}

// departure reports whether an end reason means the client really left:
// closed, reset or silent. Shutdown, kicks and normal ends are not theirs.
func departure(r conn.Reason) bool {
	return r == conn.ReasonClosed || r == conn.ReasonReset || r == conn.ReasonTimeout
}

func (a *API) decodeJobSpec(w http.ResponseWriter, r *http.Request) (jobs.Spec, *apiError) {
	body, e := readBody(w, r, a.maxBody, a.body)
	if e != nil {
		return jobs.Spec{}, e
	}
	if !utf8.Valid(body) {
		return jobs.Spec{}, errInvalidUTF8
	}
	var js jobSpec
	if err := json.Unmarshal(body, &js); err != nil {
		return jobs.Spec{}, errorf(http.StatusBadRequest, CodeInvalidJSON, "the body must be a JSON job spec: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	spec := jobs.Spec{Type: js.Type, Payload: js.Payload, MaxAttempts: js.MaxAttempts, OnDisconnect: js.OnDisconnect}
	if js.Timeout != "" {
		d, err := time.ParseDuration(js.Timeout)
		if err != nil || d <= 0 {
			return spec, errorf(http.StatusBadRequest, CodeBadRequest, "timeout must be a positive Go duration such as \"10m\"")
		}
		spec.Timeout = d
	}
	return spec, nil
}

// getJob serves GET /v1/jobs/{id}: for its creator and admins.
func (a *API) getJob(w http.ResponseWriter, r *http.Request) {
	p := a.authenticate(w, r)
	if p == nil {
		return
	}
	j, err := a.jobs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeJobError(w, r, err)
		return
	}
	if !a.authorize(w, r, p, session.Act{Op: session.OpReadJob, Creator: j.Sub}) {
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// listJobs serves GET /v1/jobs?state=&limit=: newest first, the jobs the
// asker may read (its own; an admin's, every job). limit bounds the jobs
// looked at before that filter.
func (a *API) listJobs(w http.ResponseWriter, r *http.Request) {
	p := a.authenticate(w, r)
	if p == nil {
		return
	}
	q := r.URL.Query()
	limit := a.limits.defaultLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > a.limits.maxLimit {
			writeError(w, errorf(http.StatusBadRequest, CodeBadLimit, "limit must be 1-"+strconv.Itoa(a.limits.maxLimit)))
			return
		}
		limit = n
	}
	l, err := a.jobs.List(r.Context(), jobs.State(q.Get("state")), limit)
	if err != nil {
		a.writeJobError(w, r, err)
		return
	}
	mine := []jobs.Job{}
	for _, j := range l {
		if a.core.Authorize(r.Context(), p, session.Act{Op: session.OpReadJob, Creator: j.Sub}) == nil {
			mine = append(mine, j)
		}
	}
	l = mine
	writeJSON(w, http.StatusOK, struct {
		Jobs []jobs.Job `json:"jobs"`
	}{l})
}

// cancelJob serves POST /v1/jobs/{id}/cancel. It answers the job as the
// cancel left it: canceled, or running with cancel_requested until its
// handler returns; a final job unchanged.
//
// Only the job's creator and admins may cancel it: 403 forbidden
// otherwise.
func (a *API) cancelJob(w http.ResponseWriter, r *http.Request) {
	p := a.authenticate(w, r)
	if p == nil {
		return
	}
	cur, err := a.jobs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeJobError(w, r, err)
		return
	}
	if !a.authorize(w, r, p, session.Act{Op: session.OpCancelJob, Creator: cur.Sub}) {
		return
	}
	j, err := a.jobs.Cancel(r.Context(), r.PathValue("id"), jobs.ReasonAPI)
	if err != nil {
		a.writeJobError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (a *API) writeJobError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		writeError(w, errorf(http.StatusNotFound, CodeNotFound, "no job "+r.PathValue("id")))
	case errors.Is(err, jobs.ErrNoWorker):
		writeError(w, errorf(http.StatusConflict, CodeNoWorker, clientMessage(err)))
	case errors.Is(err, jobs.ErrBadSpec):
		writeError(w, errorf(http.StatusBadRequest, CodeBadRequest, clientMessage(err)))
	default:
		a.writeStoreError(w, r, err)
	}
}
