package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/jobs"
)

// Worker request frame types (client to server). A "worker" request makes
// the connection a worker's; docs/protocol.md, "Workers", is the contract.
const (
	TypeWorker       = "worker"
	TypeJobHeartbeat = "job.heartbeat"
	TypeJobProgress  = "job.progress"
	TypeJobDone      = "job.done"
	TypeJobRelease   = "job.release"
	TypeDrain        = "drain"
)

// Server frame types pushed to a worker.
const (
	TypeJob       = "job"
	TypeJobCancel = "job.cancel"
	TypeJobFenced = "job.fenced"
)

// MaxWorkerTypes bounds the job types one worker announces.
const MaxWorkerTypes = 256

// jobFrame assigns one attempt to the worker.
type jobFrame struct {
	Type       string          `json:"type"`
	Job        string          `json:"job"`
	JobType    string          `json:"job_type"`
	Payload    json.RawMessage `json:"payload"`
	Attempt    int             `json:"attempt"`
	Deadline   time.Time       `json:"deadline,omitzero"`
	LeaseUntil time.Time       `json:"lease_until,omitzero"`
	Channel    string          `json:"channel"`
}

// jobSignal is a job.cancel or job.fenced frame.
type jobSignal struct {
	Type    string `json:"type"`
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason,omitempty"`
}

// workerState is a session's side of the jobs.Service: the attached
// worker, once a worker request succeeded.
type workerState struct {
	mu        sync.Mutex
	w         *jobs.Worker // guarded by mu; nil until attached
	attaching bool         // guarded by mu; a worker request is being served
}

// isWorkerType reports whether t is one of the worker request types.
func isWorkerType(t string) bool {
	switch t {
	case TypeWorker, TypeJobHeartbeat, TypeJobProgress, TypeJobDone, TypeJobRelease, TypeDrain:
		return true
	}
	return false
}

// workerWork returns the handler of a worker request; request runs it on
// its own goroutine, holding an in-flight slot.
func (s *session) workerWork(f Frame) func() {
	switch f.Type {
	case TypeWorker:
		return func() { s.attachWorker(f) }
	case TypeJobHeartbeat:
		return func() { s.withWorker(f, s.jobHeartbeat) }
	case TypeJobProgress:
		return func() { s.withWorker(f, s.jobProgress) }
	case TypeJobDone:
		return func() { s.withWorker(f, s.jobDone) }
	case TypeJobRelease:
		return func() { s.withWorker(f, s.jobRelease) }
	case TypeDrain:
		return func() {
			s.withWorker(f, func(f Frame, w *jobs.Worker) {
				w.Drain()
				s.reply(reply{ID: f.ID})
			})
		}
	}
	return nil
}

// attachWorker serves a worker request: the session becomes a
// jobs.WorkerConn of the Service.
func (s *session) attachWorker(f Frame) {
	if s.cfg.Jobs == nil {
		s.replyErr(f.ID, CodeUnknownType, "this server runs no jobs")
		return
	}
	switch {
	case f.Worker == "" || len(f.Worker) > MaxIDLen || !validKey(f.Worker):
		s.replyErr(f.ID, CodeBadRequest, "worker needs a worker id of 1 to 128 bytes of printable ASCII")
		return
	case len(f.Types) == 0 || len(f.Types) > MaxWorkerTypes:
		s.replyErr(f.ID, CodeBadRequest, "worker needs 1 to 256 job types")
		return
	case f.Concurrency < 0:
		s.replyErr(f.ID, CodeBadRequest, "concurrency must not be negative")
		return
	}
	ws := &s.worker
	ws.mu.Lock()
	if ws.w != nil || ws.attaching {
		ws.mu.Unlock()
		s.replyErr(f.ID, CodeBadRequest, "this connection is a worker already")
		return
	}
	ws.attaching = true
	ws.mu.Unlock()
	w, err := s.cfg.Jobs.AttachWorker(f.Worker, f.Types, max(f.Concurrency, 1), workerConn{s})
	ws.mu.Lock()
	ws.attaching = false
	if err == nil {
		ws.w = w
	}
	ws.mu.Unlock()
	if err != nil {
		s.jobErr(f, err)
		return
	}
	s.reply(reply{ID: f.ID})
}

// withWorker runs do with the attached worker, or answers not_worker.
func (s *session) withWorker(f Frame, do func(Frame, *jobs.Worker)) {
	s.worker.mu.Lock()
	w := s.worker.w
	s.worker.mu.Unlock()
	if w == nil {
		s.replyErr(f.ID, CodeNotWorker, f.Type+" before a successful worker request")
		return
	}
	do(f, w)
}

func (s *session) jobHeartbeat(f Frame, w *jobs.Worker) {
	if err := w.Heartbeat(s.ctx, f.Jobs); err != nil {
		s.jobErr(f, err)
		return
	}
	s.reply(reply{ID: f.ID})
}

func (s *session) jobProgress(f Frame, w *jobs.Worker) {
	if !s.jobRef(f) {
		return
	}
	data := f.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if err := w.Progress(s.ctx, f.Job, f.Attempt, data); err != nil {
		s.jobErr(f, err)
		return
	}
	s.reply(reply{ID: f.ID})
}

func (s *session) jobDone(f Frame, w *jobs.Worker) {
	if !s.jobRef(f) {
		return
	}
	o := jobs.Outcome{Result: f.Result, Error: f.Error, Canceled: f.Canceled}
	if !o.Canceled && o.Error == "" && len(o.Result) == 0 {
		o.Result = json.RawMessage("null")
	}
	if err := w.Complete(s.ctx, f.Job, f.Attempt, o); err != nil {
		s.jobErr(f, err)
		return
	}
	s.reply(reply{ID: f.ID})
}

func (s *session) jobRelease(f Frame, w *jobs.Worker) {
	if !s.jobRef(f) {
		return
	}
	if err := w.Release(s.ctx, f.Job, f.Attempt); err != nil {
		s.jobErr(f, err)
		return
	}
	s.reply(reply{ID: f.ID})
}

// jobRef checks that a job request names a job and an attempt.
func (s *session) jobRef(f Frame) bool {
	if f.Job == "" || f.Attempt < 1 {
		s.replyErr(f.ID, CodeBadRequest, f.Type+" needs job and attempt (1 or more)")
		return false
	}
	return true
}

// jobErr answers a request the jobs.Service refused.
func (s *session) jobErr(f Frame, err error) {
	switch {
	case errors.Is(err, jobs.ErrFenced):
		s.replyErr(f.ID, CodeFenced, "the attempt is no longer current: drop it")
	case errors.Is(err, jobs.ErrNotFound):
		s.replyErr(f.ID, CodeFenced, "no such job: drop it")
	case errors.Is(err, jobs.ErrBadSpec):
		s.replyErr(f.ID, CodeBadRequest, err.Error())
	case errors.Is(err, jobs.ErrStopped):
		s.replyErr(f.ID, CodeUnavailable, "the server is stopping")
	case s.ctx.Err() != nil:
		// ending: no one to answer
	default:
		code, msg := storeCode(err)
		if code == CodeInternal {
			s.cfg.Logger.Error("worker request failed", "type", f.Type, "job", f.Job, "err", err)
		}
		s.replyErr(f.ID, code, msg)
	}
}

// detachWorker tells the Service that the worker's connection ended. Run
// calls it once every request handler has returned.
func (s *session) detachWorker(reason conn.Reason) {
	s.worker.mu.Lock()
	w := s.worker.w
	s.worker.w = nil
	s.worker.mu.Unlock()
	if w != nil {
		w.Detach(departed(reason))
	}
}

// departed reports whether a connection that ended for reason is a real
// departure of its peer: anything but the server's own shutdown, after
// which a worker or follower reconnects (to this node or another).
func departed(reason conn.Reason) bool { return reason != conn.ReasonShutdown }

// errEnding: the connection is ending; a frame pushed now would not reach
// the worker.
var errEnding = errors.New("tether: protocol: connection ending")

// workerConn adapts a session to jobs.WorkerConn. Its frames go on the
// control lane past the byte bound (forceCtrl), so the Service never
// waits on a slow worker; they are bounded all the same, by the worker's
// concurrency (one job frame per free slot, one cancel and one fenced
// frame per attempt).
type workerConn struct{ s *session }

func (c workerConn) push(v any) bool {
	select {
	case <-c.s.ended:
		return false
	default:
	}
	return c.s.q.forceCtrl(item{frame: encode(v), app: true})
}

func (c workerConn) Assign(a jobs.Assignment) error {
	payload := a.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	ok := c.push(jobFrame{
		Type: TypeJob, Job: a.JobID, JobType: a.Type, Payload: payload, Attempt: a.Attempt,
		Deadline: a.Deadline, LeaseUntil: a.LeaseUntil, Channel: a.Channel,
	})
	if !ok {
		return errEnding
	}
	return nil
}

func (c workerConn) Cancel(jobID string, attempt int, reason string) {
	c.push(jobSignal{Type: TypeJobCancel, Job: jobID, Attempt: attempt, Reason: reason})
}

func (c workerConn) Fenced(jobID string, attempt int, reason string) {
	c.push(jobSignal{Type: TypeJobFenced, Job: jobID, Attempt: attempt, Reason: reason})
}

// follow counts a subscriber of a job's channel as a follower of the job
// (jobs.Service.Follow), so that an on_disconnect=cancel job is cancelled
// when its followers depart. The sub's unfollow ends it.
func (s *session) follow(sb *sub) {
	if s.cfg.Jobs == nil || !strings.HasPrefix(sb.channel, jobs.ChannelPrefix) {
		return
	}
	sb.unfollow = s.cfg.Jobs.Follow(strings.TrimPrefix(sb.channel, jobs.ChannelPrefix))
}

// unfollowAll ends the follows of every subscription when the connection
// ended for reason.
func (s *session) unfollowAll(reason conn.Reason) {
	s.mu.Lock()
	subs := make([]*sub, 0, len(s.subs))
	for _, sb := range s.subs {
		subs = append(subs, sb)
	}
	s.mu.Unlock()
	for _, sb := range subs {
		sb.stopFollow(departed(reason))
	}
}
