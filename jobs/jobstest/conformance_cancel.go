package jobstest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/store"
)

func testJobCancelQueued(t *testing.T, open OpenStore) {
	st := openStore(t, open)
	s := startJobs(t, st, "n1", nil, nil)
	j := create(t, s, jobs.Spec{Type: "nobody-runs-this"})
	c, err := s.Cancel(t.Context(), j.ID, "")
	if err != nil || c.State != jobs.Canceled || c.CancelReason != jobs.ReasonAPI {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	w := attach(t, s, nil, Config{Types: []string{"nobody-runs-this"}, Handler: ok(`1`)})
	again, err := s.Cancel(t.Context(), j.ID, "")
	if err != nil || again.State != jobs.Canceled || again.Cursor != c.Cursor {
		t.Fatalf("second Cancel = %+v, %v; want unchanged", again, err)
	}
	// The worker runs the next job, never the canceled one.
	next := create(t, s, jobs.Spec{Type: "nobody-runs-this"})
	if got := await(t, s, next.ID); got.State != jobs.Succeeded {
		t.Fatalf("next job %+v", got)
	}
	for _, a := range w.Assigned() {
		if a.JobID == j.ID {
			t.Fatal("a canceled job was assigned")
		}
	}
}

// cancelRunning cancels a running job through via while its worker is
// attached to s, and checks the push reached the handler's context, the
// job is canceled, and the worker takes the next job. The clock never
// moves: the push owes nothing to a timer, and no lease can run out.
func cancelRunning(t *testing.T, st store.Store, c *Clock, s, via *jobs.Service) {
	started := make(chan jobs.Assignment, 2)
	w := attach(t, s, c, Config{Handler: blocking(started, nil)})
	j := create(t, s, jobs.Spec{})
	recv(t, started)
	if _, err := via.Cancel(t.Context(), j.ID, ""); err != nil {
		t.Fatal(err)
	}
	j = await(t, s, j.ID)
	if j.State != jobs.Canceled || j.CancelReason != jobs.ReasonAPI || j.Attempt != 1 {
		t.Fatalf("final %+v; want canceled (api) in attempt 1", j)
	}
	waitFor(t, w, "outcome", func(w *Worker) bool { return len(w.Dones()) == 1 })
	if d := w.Dones(); len(d) != 1 || !d[0].Canceled || d[0].Err != nil {
		t.Fatalf("worker saw %+v; want one cancelled handler, its outcome accepted", d)
	}
	if len(w.Fences()) != 0 {
		t.Fatalf("fenced %+v; the handler returned in time", w.Fences())
	}
	if names, _ := events(t, st, j.ID); fmt.Sprint(names) != "[queued running cancel_requested canceled]" {
		t.Fatalf("events %v; want [queued running cancel_requested canceled]", names)
	}
	next := create(t, s, jobs.Spec{})
	recv(t, started)
	if _, err := via.Cancel(t.Context(), next.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got := await(t, s, next.ID); got.State != jobs.Canceled {
		t.Fatalf("next job %+v", got)
	}
	if n := len(w.Assigned()); n != 2 {
		t.Fatalf("worker got %d assignments; want 2", n)
	}
}

func testJobCancelRunning(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	s := startJobs(t, st, "n1", c, nil)
	cancelRunning(t, st, c, s, s)
}

// testJobCancelOtherNode: the cancel is written by another node; the node
// holding the worker sees it on the job's channel and pushes it.
func testJobCancelOtherNode(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	cancelRunning(t, st, c, startJobs(t, st, "a", c, nil), startJobs(t, st, "b", c, nil))
}

func testJobRelease(t *testing.T, open OpenStore) {
	st := openStore(t, open)
	s := startJobs(t, st, "n1", nil, nil)
	started := make(chan jobs.Assignment, 1)
	w := attach(t, s, nil, Config{ID: "a", Handler: blocking(started, nil)})
	j := create(t, s, jobs.Spec{MaxAttempts: 2})
	a := recv(t, started)
	w.W.Drain()
	if err := w.W.Release(t.Context(), a.JobID, a.Attempt); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, j.ID); got.State != jobs.Queued || got.Attempt != 1 {
		t.Fatalf("after release %+v; want queued", got)
	}
	var mu sync.Mutex
	tries := 0
	attach(t, s, nil, Config{ID: "b", Handler: func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		mu.Lock()
		defer mu.Unlock()
		if tries++; tries == 1 {
			return nil, ErrBoom
		}
		return json.RawMessage(`"ok"`), nil
	}})
	// Attempt 2 fails; had the release counted, that would be the last.
	if got := await(t, s, j.ID); got.State != jobs.Succeeded || got.Attempt != 3 {
		t.Fatalf("final %+v; want succeeded in attempt 3 (the release did not count)", got)
	}
}

func testJobMaxAttempts(t *testing.T, open OpenStore) {
	st := openStore(t, open)
	s := startJobs(t, st, "n1", nil, nil)
	attach(t, s, nil, Config{Handler: func(context.Context, jobs.Assignment, func(string) error) (json.RawMessage, error) {
		return nil, ErrBoom
	}})
	j := create(t, s, jobs.Spec{MaxAttempts: 3})
	j = await(t, s, j.ID)
	if j.State != jobs.Failed || j.Attempt != 3 || j.Error != "boom" {
		t.Fatalf("final %+v; want failed after 3 attempts with boom", j)
	}
	names, _ := events(t, st, j.ID)
	if count(names, "retrying") != 2 || count(names, "failed") != 1 {
		t.Fatalf("events %v", names)
	}
	l, err := s.List(t.Context(), jobs.Failed, 10)
	if err != nil || len(l) != 1 || l[0].ID != j.ID {
		t.Fatalf("List(failed) = %+v, %v", l, err)
	}
}

func testJobIdempotency(t *testing.T, open OpenStore) {
	st := openStore(t, open)
	a, b := startJobs(t, st, "a", nil, nil), startJobs(t, st, "b", nil, nil)
	type res struct {
		j       jobs.Job
		created bool
		err     error
	}
	out := make(chan res, 8)
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		go func() {
			j, c, err := s.Create(t.Context(), jobs.Spec{Type: "t", Payload: json.RawMessage(`1`)}, "key-1")
			out <- res{j, c, err}
		}()
	}
	var id string
	created := 0
	for range 8 {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		if id != "" && r.j.ID != id {
			t.Fatalf("ids %s and %s for one key", id, r.j.ID)
		}
		id = r.j.ID
		if r.created {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d creates reported created; want 1", created)
	}
	other, _, err := a.Create(t.Context(), jobs.Spec{Type: "t"}, "key-2")
	if err != nil || other.ID == id {
		t.Fatalf("second key: %+v, %v; want a job of its own", other, err)
	}
	names, _ := events(t, st, id)
	if count(names, "queued") != 1 {
		t.Fatalf("events %v", names)
	}
}
