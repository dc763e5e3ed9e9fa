package workerproto

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/wire"
)

// Extension serves the worker requests of docs/protocol.md, "Workers", on
// a session.Core, and counts the subscribers of job channels as the jobs'
// followers. Pass it to session.New.
type Extension struct {
	svc *jobs.Service

	mu      sync.Mutex
	workers map[*session.Session]*workerState // guarded by mu; sessions that made a worker request
}

// New returns the extension serving svc's workers.
func New(svc *jobs.Service) *Extension {
	return &Extension{svc: svc, workers: map[*session.Session]*workerState{}}
}

// workerState is a session's side of the jobs.Service: the attached
// worker, once a worker request succeeded.
type workerState struct {
	mu        sync.Mutex
	w         *jobs.Worker // guarded by mu; nil until attached
	attaching bool         // guarded by mu; a worker request is being served
}

// RequestTypes implements session.Extension.
func (x *Extension) RequestTypes() []string {
	return []string{wire.TypeWorker, wire.TypeJobHeartbeat, wire.TypeJobProgress, wire.TypeJobDone, wire.TypeJobRelease, wire.TypeDrain}
}

// Serve implements session.Extension: one worker request, on its own
// goroutine.
func (x *Extension) Serve(s *session.Session, typ, id string, frame []byte) {
	f, err := wire.DecodeWorker(frame)
	if err != nil {
		s.ReplyError(id, wire.CodeBadRequest, err.Error())
		return
	}
	if typ == wire.TypeWorker {
		x.attach(s, f)
		return
	}
	w := x.worker(s)
	if w == nil {
		s.ReplyError(id, wire.CodeNotWorker, typ+" before a successful worker request")
		return
	}
	switch typ {
	case wire.TypeJobHeartbeat:
		x.answer(s, f, w.Heartbeat(s.Context(), f.Jobs))
	case wire.TypeJobProgress:
		if jobRef(s, f) {
			data := f.Data
			if len(data) == 0 {
				data = json.RawMessage("null")
			}
			x.answer(s, f, w.Progress(s.Context(), f.Job, f.Attempt, data))
		}
	case wire.TypeJobDone:
		if jobRef(s, f) {
			o := jobs.Outcome{Result: f.Result, Error: f.Error, Canceled: f.Canceled}
			if !o.Canceled && o.Error == "" && len(o.Result) == 0 {
				o.Result = json.RawMessage("null")
			}
			x.answer(s, f, w.Complete(s.Context(), f.Job, f.Attempt, o))
		}
	case wire.TypeJobRelease:
		if jobRef(s, f) {
			x.answer(s, f, w.Release(s.Context(), f.Job, f.Attempt))
		}
	case wire.TypeDrain:
		w.Drain()
		s.Reply(wire.Reply{ID: f.ID})
	}
}

// attach serves a worker request: the session becomes a
// jobs.WorkerConn of the Service.
func (x *Extension) attach(s *session.Session, f wire.WorkerRequest) {
	switch {
	case len(f.Worker) > wire.MaxIDLen || !wire.ValidKey(f.Worker):
		s.ReplyError(f.ID, wire.CodeBadRequest, "worker needs a worker id of 1 to 128 bytes of printable ASCII")
		return
	case len(f.Types) == 0 || len(f.Types) > wire.MaxWorkerTypes:
		s.ReplyError(f.ID, wire.CodeBadRequest, "worker needs 1 to 256 job types")
		return
	case f.Concurrency < 0:
		s.ReplyError(f.ID, wire.CodeBadRequest, "concurrency must not be negative")
		return
	}
	// Only a worker token runs jobs, and only of its types: a worker
	// asking for one type more is refused whole, so that it never waits
	// for jobs it cannot get.
	for _, t := range f.Types {
		if err := s.Authorize(session.Act{Op: session.OpWork, JobType: t}); err != nil {
			s.ReplyDenied(f.ID, err)
			return
		}
	}
	x.mu.Lock()
	ws := x.workers[s]
	if ws == nil {
		ws = &workerState{}
		x.workers[s] = ws
	}
	x.mu.Unlock()
	ws.mu.Lock()
	if ws.w != nil || ws.attaching {
		ws.mu.Unlock()
		s.ReplyError(f.ID, wire.CodeBadRequest, "this connection is a worker already")
		return
	}
	ws.attaching = true
	ws.mu.Unlock()
	w, err := x.svc.AttachWorker(WorkerID(s.Principal().Sub(), f.Worker), f.Types, max(f.Concurrency, 1), workerConn{s})
	ws.mu.Lock()
	ws.attaching = false
	if err == nil {
		ws.w = w
	}
	ws.mu.Unlock()
	x.answer(s, f, err)
}

// WorkerID is the id a worker is known by (a job's "worker", the fencing
// of its attempts): the id it asked for, within its user's own space
// ("sub/id") when it has a token, so that a worker of another user can
// never take its name and complete its attempts.
func WorkerID(sub, asked string) string {
	if sub == "" {
		return asked
	}
	return sub + "/" + asked
}

// ChannelOwner implements session.ChannelOwner: a job's channel belongs
// to the job's creator, who may follow it.
func (x *Extension) ChannelOwner(ctx context.Context, channel string) (string, bool) {
	id, ok := strings.CutPrefix(channel, wire.JobChannelPrefix)
	if !ok {
		return "", false
	}
	j, err := x.svc.Get(ctx, id)
	if err != nil || j.Sub == "" {
		return "", false
	}
	return j.Sub, true
}

// worker returns the session's attached worker, or nil.
func (x *Extension) worker(s *session.Session) *jobs.Worker {
	x.mu.Lock()
	ws := x.workers[s]
	x.mu.Unlock()
	if ws == nil {
		return nil
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.w
}

// Ended implements session.Extension: it tells the Service that the
// worker's connection ended.
func (x *Extension) Ended(s *session.Session, departed bool) {
	x.mu.Lock()
	ws := x.workers[s]
	delete(x.workers, s)
	x.mu.Unlock()
	if ws == nil {
		return
	}
	ws.mu.Lock()
	w := ws.w
	ws.w = nil
	ws.mu.Unlock()
	if w != nil {
		w.Detach(departed)
	}
}

// Follow implements session.Follower: a subscriber of a job's channel
// follows the job (jobs.Service.Follow), so that an on_disconnect=cancel
// job is cancelled when its followers depart.
func (x *Extension) Follow(channel string) func(departed bool) {
	if !strings.HasPrefix(channel, wire.JobChannelPrefix) {
		return nil
	}
	return x.svc.Follow(strings.TrimPrefix(channel, wire.JobChannelPrefix))
}

// jobRef checks that a job request names a job and an attempt.
func jobRef(s *session.Session, f wire.WorkerRequest) bool {
	if f.Job == "" || f.Attempt < 1 {
		s.ReplyError(f.ID, wire.CodeBadRequest, f.Type+" needs job and attempt (1 or more)")
		return false
	}
	return true
}

// answer replies ok, or with the code of what the jobs.Service refused.
func (x *Extension) answer(s *session.Session, f wire.WorkerRequest, err error) {
	switch {
	case err == nil:
		s.Reply(wire.Reply{ID: f.ID})
	case errors.Is(err, jobs.ErrFenced):
		s.ReplyError(f.ID, wire.CodeFenced, "the attempt is no longer current: drop it")
	case errors.Is(err, jobs.ErrNotFound):
		s.ReplyError(f.ID, wire.CodeFenced, "no such job: drop it")
	case errors.Is(err, jobs.ErrBadSpec):
		s.ReplyError(f.ID, wire.CodeBadRequest, err.Error())
	case errors.Is(err, jobs.ErrStopped):
		s.ReplyError(f.ID, wire.CodeUnavailable, "the server is stopping")
	default:
		s.StoreError(f.ID, err)
	}
}

// errEnding: the connection is ending; a frame pushed now would not reach
// the worker.
var errEnding = errors.New("tether: workerproto: connection ending")

// workerConn adapts a session to jobs.WorkerConn. Its frames go on the
// control lane past the byte bound (Session.Push), so the Service never
// waits on a slow worker; they are bounded all the same, by the worker's
// concurrency (one job frame per free slot, one cancel and one fenced
// frame per attempt).
type workerConn struct{ s *session.Session }

func (c workerConn) Assign(a jobs.Assignment) error {
	payload := a.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	ok := c.s.Push(wire.JobFrame{
		Type: wire.TypeJob, Job: a.JobID, JobType: a.Type, Payload: payload, Attempt: a.Attempt,
		Deadline: a.Deadline, LeaseUntil: a.LeaseUntil, Channel: a.Channel,
	})
	if !ok {
		return errEnding
	}
	return nil
}

func (c workerConn) Cancel(jobID string, attempt int, reason string) {
	c.s.Push(wire.JobSignal{Type: wire.TypeJobCancel, Job: jobID, Attempt: attempt, Reason: reason})
}

func (c workerConn) Fenced(jobID string, attempt int, reason string) {
	c.s.Push(wire.JobSignal{Type: wire.TypeJobFenced, Job: jobID, Attempt: attempt, Reason: reason})
}
