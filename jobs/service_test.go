package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/jobstest"
	"github.com/tether-run/tether/store"
)

// newService starts a Service on st whose time moves only when c is
// advanced: no lease runs out and no grace ends unless a test says so.
func newService(t *testing.T, st store.Store, c *jobstest.Clock) *jobs.Service {
	t.Helper()
	cfg := jobs.Config{HeartbeatInterval: 100 * time.Millisecond, CancelGrace: 300 * time.Millisecond,
		FollowGrace: followGrace, Backoff: func(int) time.Duration { return 10 * time.Millisecond }, Clock: c}
	s, err := jobs.New(cfg, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

const followGrace = 200 * time.Millisecond

func clock() *jobstest.Clock { return jobstest.NewClock(time.Now()) }

func pebble(t *testing.T) store.Store {
	t.Helper()
	st := openPebble(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	return st
}

// recorder is a WorkerConn that only records what it is told.
type recorder struct {
	mu      sync.Mutex
	assigns []jobs.Assignment
	cancels []string
	fenced  []string
	pushed  chan string
}

func newRecorder() *recorder { return &recorder{pushed: make(chan string, 16)} }

func (r *recorder) Assign(a jobs.Assignment) error {
	r.mu.Lock()
	r.assigns = append(r.assigns, a)
	r.mu.Unlock()
	r.pushed <- "assign " + a.JobID
	return nil
}

func (r *recorder) Cancel(id string, n int, reason string) {
	r.mu.Lock()
	r.cancels = append(r.cancels, id)
	r.mu.Unlock()
	r.pushed <- "cancel " + id
}

func (r *recorder) Fenced(id string, n int, reason string) {
	r.mu.Lock()
	r.fenced = append(r.fenced, id+" "+reason)
	r.mu.Unlock()
	r.pushed <- "fenced " + id
}

func next(t *testing.T, r *recorder) string {
	t.Helper()
	select {
	case p := <-r.pushed:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no push within 5s")
		return ""
	}
}

// A worker that reconnects (a new connection, same worker id) and
// heartbeats its attempt keeps it: the node adopts it and handles its
// cancel from then on.
func TestReconnectedWorkerKeepsItsJob(t *testing.T) {
	s := newService(t, pebble(t), clock())
	r1 := newRecorder()
	w1, err := s.AttachWorker("w1", nil, 1, r1)
	if err != nil {
		t.Fatal(err)
	}
	j, _, _ := s.Create(t.Context(), jobs.Spec{Type: "t"}, "")
	if p := next(t, r1); p != "assign "+j.ID {
		t.Fatalf("push %q", p)
	}
	w1.Detach(false) // the connection ended with the server's stop, say
	r2 := newRecorder()
	w2, _ := s.AttachWorker("w1", nil, 1, r2)
	if err := w2.Heartbeat(t.Context(), map[string]int{j.ID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(t.Context(), j.ID, ""); err != nil {
		t.Fatal(err)
	}
	if p := next(t, r2); p != "cancel "+j.ID {
		t.Fatalf("push to the reconnected worker %q; want its cancel", p)
	}
	if err := w2.Complete(t.Context(), j.ID, 1, jobs.Outcome{Canceled: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(t.Context(), j.ID); got.State != jobs.Canceled || got.Attempt != 1 {
		t.Fatalf("job %+v; want canceled in attempt 1", got)
	}
	// Another worker's heartbeat for it is fenced.
	r3 := newRecorder()
	w3, _ := s.AttachWorker("w3", []string{"other"}, 1, r3)
	w3.Heartbeat(t.Context(), map[string]int{j.ID: 1})
	if p := next(t, r3); p != "fenced "+j.ID {
		t.Fatalf("push %q; want fenced", p)
	}
}

// A worker whose node goes away reconnects to another node of the same
// service (same store) and keeps its running attempt there: the lease, the
// cancel push and the outcome all go through the new node.
func TestWorkerKeepsItsJobOnAnotherNode(t *testing.T) {
	st := pebble(t)
	c := clock()
	a, b := newService(t, st, c), newService(t, st, c)
	r1 := newRecorder()
	w1, err := a.AttachWorker("w1", nil, 1, r1)
	if err != nil {
		t.Fatal(err)
	}
	j, _, _ := a.Create(t.Context(), jobs.Spec{Type: "t"}, "")
	if p := next(t, r1); p != "assign "+j.ID {
		t.Fatalf("push %q", p)
	}
	w1.Detach(false) // node a stops: not a departure
	r2 := newRecorder()
	w2, err := b.AttachWorker("w1", nil, 1, r2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Heartbeat(t.Context(), map[string]int{j.ID: 1}); err != nil {
		t.Fatalf("heartbeat through node b: %v", err)
	}
	// A cancel written through node a reaches the worker through node b.
	if _, err := a.Cancel(t.Context(), j.ID, ""); err != nil {
		t.Fatal(err)
	}
	if p := next(t, r2); p != "cancel "+j.ID {
		t.Fatalf("push to the worker on node b %q; want its cancel", p)
	}
	if err := w2.Complete(t.Context(), j.ID, 1, jobs.Outcome{Canceled: true}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*jobs.Service{a, b} {
		if got, _ := s.Get(t.Context(), j.ID); got.State != jobs.Canceled || got.Attempt != 1 {
			t.Fatalf("job %+v; want canceled in attempt 1, seen alike from both nodes", got)
		}
	}
}

// The follow grace: a follower that comes back in time keeps the job; a
// job whose last follower departed for good is canceled when the grace
// ends, to the instant.
func TestFollowGrace(t *testing.T) {
	c := clock()
	s := newService(t, pebble(t), c)
	kept, _, _ := s.Create(t.Context(), jobs.Spec{Type: "nobody"}, "")
	detached, _, _ := s.Create(t.Context(), jobs.Spec{Type: "nobody", OnDisconnect: jobs.Detach}, "")
	ended, _, _ := s.Create(t.Context(), jobs.Spec{Type: "nobody"}, "")

	s.Follow(kept.ID)(true)
	back := s.Follow(kept.ID) // within the grace
	s.Follow(detached.ID)(true)
	s.Follow(ended.ID)(false) // a normal end is not a departure
	gone := s.Follow(ended.ID)
	gone(true)
	gone(true) // counted once

	c.Advance(followGrace - time.Millisecond)
	for _, id := range []string{kept.ID, detached.ID, ended.ID} {
		if j, _ := s.Get(t.Context(), id); j.State != jobs.Queued {
			t.Fatalf("job %s before the grace ended: %s; want still queued", id, j.State)
		}
	}
	c.Advance(time.Millisecond) // the grace timer's callback has run when Advance returns
	if j, _ := s.Get(t.Context(), ended.ID); j.State != jobs.Canceled || j.CancelReason != jobs.ReasonClientGone {
		t.Fatalf("job of the departed follower: %+v; want canceled, client-gone", j)
	}
	for _, id := range []string{kept.ID, detached.ID} {
		if j, _ := s.Get(t.Context(), id); j.State != jobs.Queued {
			t.Fatalf("job %s: %s; want still queued", id, j.State)
		}
	}
	back(false)
}

// A job whose create crashed between its channel append and its index
// append is repaired when it is read, and then known after a restart.
func TestMissingIndexEntryRepaired(t *testing.T) {
	st := pebble(t)
	c := clock()
	s := newService(t, st, c)
	j, _, _ := s.Create(t.Context(), jobs.Spec{Type: "t"}, "")
	// Forge the crash: a second job's queued event without its index entry.
	id := "01m80e4faxmbktm66ckk7cbez8"
	ev, _ := json.Marshal(map[string]any{"event": "queued", "job": map[string]any{
		"id": id, "type": "t", "payload": nil, "timeout": "1m0s", "max_attempts": 3, "on_disconnect": "detach",
		"created": time.Now()}})
	if _, err := st.Append(t.Context(), jobs.ChannelPrefix+id, ev, store.AppendOptions{ExpectLatest: store.Start}); err != nil {
		t.Fatal(err)
	}
	s2 := newService(t, st, c)
	if l, _ := s2.List(t.Context(), "", 10); len(l) != 1 || l[0].ID != j.ID {
		t.Fatalf("before the repair: %+v; want only the indexed job", l)
	}
	if got, err := s2.Get(t.Context(), id); err != nil || got.State != jobs.Queued {
		t.Fatalf("Get of the unindexed job: %+v, %v", got, err)
	}
	s3 := newService(t, st, c)
	if l, _ := s3.List(t.Context(), "", 10); len(l) != 2 {
		t.Fatalf("after the repair a new node lists %d jobs; want 2", len(l))
	}
}

// Stop writes nothing and cancels nothing; a Service refuses workers after it.
func TestStopLeavesJobsAlone(t *testing.T) {
	st := pebble(t)
	s, _ := jobs.New(jobs.Config{HeartbeatInterval: 100 * time.Millisecond, Clock: clock()}, st, nil, nil)
	if _, err := s.AttachWorker("", nil, 1, newRecorder()); !errors.Is(err, jobs.ErrStopped) {
		t.Fatalf("AttachWorker before Start: %v", err)
	}
	s.Start(t.Context())
	r := newRecorder()
	s.AttachWorker("", nil, 1, r)
	j, _, _ := s.Create(t.Context(), jobs.Spec{Type: "t"}, "")
	next(t, r)
	before, _ := st.Bounds(t.Context(), j.Channel)
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := st.Bounds(t.Context(), j.Channel)
	if before.Latest != after.Latest {
		t.Fatal("Stop wrote to a running job")
	}
	if _, err := s.AttachWorker("", nil, 1, r); !errors.Is(err, jobs.ErrStopped) {
		t.Fatalf("AttachWorker after Stop: %v", err)
	}
}
