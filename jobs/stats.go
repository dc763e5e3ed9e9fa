package jobs

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// This file holds the Service's read-only summary for an operator's view
// (the admin dashboard): jobs by state, the jobs not yet final and the
// latest final ones, and the workers attached to this node with what they
// run. It reads only what this node holds in memory: no store I/O.

// WorkerInfo describes one worker attached to this node.
type WorkerInfo struct {
	ID          string   `json:"id"`
	Types       []string `json:"types"` // empty: any type
	Concurrency int      `json:"concurrency"`
	// Running are the attempts it runs now, oldest deadline first.
	Running  []RunningAttempt `json:"running"`
	Claiming int              `json:"claiming"` // claims in flight
	Draining bool             `json:"draining,omitempty"`
	// Suspect: an attempt of it lost its lease; it gets no new job until
	// its next heartbeat.
	Suspect bool `json:"suspect,omitempty"`
}

// RunningAttempt is one attempt a worker of this node runs.
type RunningAttempt struct {
	Job        string    `json:"job"`
	Type       string    `json:"type"`
	Attempt    int       `json:"attempt"`
	Deadline   time.Time `json:"deadline"`
	CancelSent bool      `json:"cancel_sent,omitempty"`
}

// Overview is what the Service knows now, bounded in size.
type Overview struct {
	// States counts the jobs this node knows, by state.
	States map[State]int `json:"states"`
	// Jobs are the jobs not final, newest first, then the latest final
	// ones, newest first. Payload, progress and result are left out.
	Jobs []Job `json:"jobs"`
	// Workers are the workers attached to this node, by id.
	Workers []WorkerInfo `json:"workers"`
}

// Overview summarises the jobs and workers of this node: every state
// count, at most live jobs not final and final of the final ones. A final
// job is known by its summary only (id, type, state, created). It makes
// one pass over the jobs this node knows under Service.mu, keeping only
// the newest of each kind (no sort of them all), and no store I/O.
func (s *Service) Overview(live, final int) Overview {
	o := Overview{States: map[State]int{}, Jobs: []Job{}, Workers: []WorkerInfo{}}
	running, done := newestOf(live), newestOf(final)
	s.mu.Lock()
	for _, e := range s.entries {
		if !e.known {
			continue
		}
		o.States[e.state]++
		if e.state.Final() {
			done.offer(e)
		} else {
			running.offer(e)
		}
	}
	for _, w := range s.workers {
		o.Workers = append(o.Workers, s.workerInfoLocked(w))
	}
	s.mu.Unlock()
	slices.SortFunc(o.Workers, func(a, b WorkerInfo) int { return cmp.Compare(a.ID, b.ID) })
	for _, sm := range append(running.sms, done.sms...) {
		o.Jobs = append(o.Jobs, sm.folded())
	}
	return o
}

// newest keeps the n newest summaries offered, newest first.
type newest struct {
	n   int
	sms []summary
}

func newestOf(n int) *newest { return &newest{n: max(n, 0)} }

// offer keeps e if it is among the n newest so far. Service.mu is held
// (it reads e's summary).
func (k *newest) offer(e *entry) {
	if k.n == 0 || (len(k.sms) == k.n && cmpEntry(e, k.sms[k.n-1].e) < 0) {
		return
	}
	i, _ := slices.BinarySearchFunc(k.sms, e, func(sm summary, e *entry) int { return -cmpEntry(sm.e, e) })
	sm := summary{e: e, job: Job{ID: e.id, Channel: ChannelPrefix + e.id, Type: e.typ, State: e.state, Created: e.created}}
	k.sms = slices.Insert(k.sms, i, sm)
	if len(k.sms) > k.n {
		k.sms = k.sms[:k.n]
	}
}

// summary is an entry and the job as its summary describes it.
type summary struct {
	e   *entry
	job Job
}

// folded returns the job as this node folded it, without payload,
// progress and result, or the summary's when the folded job is not there
// (being read again). entry.mu is taken after Service.mu was released
// (lock order); it is held only across another writer's store I/O.
func (sm summary) folded() Job {
	sm.e.mu.Lock()
	j := sm.e.job
	sm.e.mu.Unlock()
	if j.State == "" {
		return sm.job
	}
	j.Payload, j.Progress, j.Result = nil, nil, nil
	return j
}

// workerInfoLocked describes w. Service.mu is held.
func (s *Service) workerInfoLocked(w *Worker) WorkerInfo {
	wi := WorkerInfo{
		ID: w.id, Types: slices.Sorted(maps.Keys(w.types)), Concurrency: w.concurrency,
		Running: []RunningAttempt{}, Claiming: w.reserved, Draining: w.draining, Suspect: w.suspect,
	}
	for id, l := range w.running {
		wi.Running = append(wi.Running, RunningAttempt{Job: id, Type: l.e.typ, Attempt: l.n, Deadline: l.deadline, CancelSent: l.cancelSent})
	}
	slices.SortFunc(wi.Running, func(a, b RunningAttempt) int {
		if c := a.Deadline.Compare(b.Deadline); c != 0 {
			return c
		}
		return cmp.Compare(a.Job, b.Job)
	})
	return wi
}
