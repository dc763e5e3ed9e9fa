package jobstest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
)

// The lease cases run on a Clock that only Advance moves: a Service
// started at the clock's time t0 sweeps at t0 + k*hb/2, a claim at t0
// leases the attempt until t0 + 3*hb, and a worker attached at t0
// heartbeats at t0 + k*hb.

// testJobLeaseExpiry: a worker stops heartbeating (paused); its lease
// holds to its last instant, and the first sweep after it runs the job on
// another worker.
func testJobLeaseExpiry(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	s := startJobs(t, st, "n1", c, nil)
	started := make(chan jobs.Assignment, 2)
	a := attach(t, s, c, Config{ID: "a", Handler: blocking(started, nil)})
	j := create(t, s, jobs.Spec{})
	first := recv(t, started)
	if want := c.Now().Add(3 * hb); !first.LeaseUntil.Equal(want) {
		t.Fatalf("lease until %v; want the claim's time plus 3 intervals, %v", first.LeaseUntil, want)
	}
	a.Pause()
	b := attach(t, s, c, Config{ID: "b", Handler: blocking(started, nil)})
	c.Advance(3 * hb) // to the lease's last instant, sweeping on the way
	if got := get(t, s, j.ID); got.State != jobs.Running || got.Attempt != 1 || got.Worker != "a" {
		t.Fatalf("at the lease's end %+v; want still running attempt 1 on a", got)
	}
	c.Advance(hb / 2) // the next sweep
	second := recv(t, started)
	if second.JobID != j.ID || second.Attempt != 2 || len(b.Assigned()) != 1 {
		t.Fatalf("second assignment %+v; want job %s attempt 2 on b", second, j.ID)
	}
	_, evs := events(t, st, j.ID)
	var retry map[string]any
	for _, ev := range evs {
		if ev["event"] == "retrying" {
			retry = ev
		}
	}
	if retry == nil || retry["error"] != "lease expired" || retry["attempt"] != float64(1) {
		t.Fatalf("events %v; want attempt 1 retrying with lease expired", evs)
	}
	if at, want := eventTime(t, retry, "retry_at"), first.LeaseUntil.Add(hb/2); !at.Equal(want) {
		t.Fatalf("retry_at %v; want at once, at the sweep after the lease, %v", at, want)
	}
}

// testJobHeartbeat: a job running for four lease lengths, heartbeated
// every interval, is never taken away, though another worker is idle.
func testJobHeartbeat(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	s := startJobs(t, st, "n1", c, nil)
	release := make(chan struct{})
	started := make(chan jobs.Assignment, 1)
	attach(t, s, c, Config{ID: "a", Handler: blocking(started, release)})
	j := create(t, s, jobs.Spec{})
	recv(t, started)
	idle := attach(t, s, c, Config{ID: "b", Handler: ok(`2`)})
	c.Advance(12 * hb) // four lease lengths: 12 heartbeats, 24 sweeps
	close(release)
	j = await(t, s, j.ID)
	if j.State != jobs.Succeeded || j.Attempt != 1 || j.Worker != "a" || string(j.Result) != `"released"` {
		t.Fatalf("final %+v; want succeeded by a in attempt 1", j)
	}
	if n := len(idle.Assigned()); n != 0 {
		t.Fatalf("idle worker got %d assignments", n)
	}
	if names, _ := events(t, st, j.ID); count(names, "lease") != 12 {
		t.Fatalf("events %v; want 12 lease renewals", names)
	}
}

// testJobFenced: a worker paused past its lease wakes up and completes its
// old attempt: refused, and the outcome stays the one recorded by the
// worker that took over.
func testJobFenced(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	s := startJobs(t, st, "n1", c, nil)
	releaseA := make(chan struct{})
	started := make(chan jobs.Assignment, 2)
	a := attach(t, s, c, Config{ID: "a", Handler: blocking(started, releaseA)})
	j := create(t, s, jobs.Spec{})
	recv(t, started)
	a.Pause()
	close(releaseA) // the handler finishes, but the paused worker cannot report yet
	attach(t, s, c, Config{ID: "b", Handler: ok(`"b"`)})
	c.Advance(3*hb + hb/2) // the sweep after the lease
	if f := a.Fences(); len(f) != 1 || f[0].Reason != "lease-expired" {
		t.Fatalf("fences %+v; want the sweep's lease-expired push", f)
	}
	j = await(t, s, j.ID)
	if j.State != jobs.Succeeded || j.Attempt != 2 || string(j.Result) != `"b"` {
		t.Fatalf("final %+v; want b's result in attempt 2", j)
	}
	a.Resume()
	waitFor(t, a, "report of the resumed handler", func(w *Worker) bool { return len(w.Dones()) == 1 })
	if d := a.Dones()[0]; !errors.Is(d.Err, jobs.ErrFenced) {
		t.Fatalf("stale Complete = %v; want ErrFenced", d.Err)
	}
	// A stale progress report is refused too.
	if err := a.W.Progress(t.Context(), j.ID, 1, json.RawMessage(`1`)); !errors.Is(err, jobs.ErrFenced) {
		t.Fatalf("stale Progress = %v; want ErrFenced", err)
	}
	names, _ := events(t, st, j.ID)
	if count(names, "succeeded") != 1 || count(names, "running") != 2 {
		t.Fatalf("events %v; want two claims and one outcome", names)
	}
	if got := get(t, s, j.ID); string(got.Result) != `"b"` {
		t.Fatalf("result after the stale completion: %s", got.Result)
	}
}

// testJobWorkerGone: a worker's connection dies; its job runs elsewhere at
// once, the clock never moving: no lease, no backoff waited for.
func testJobWorkerGone(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	s := startJobs(t, st, "n1", c, nil)
	started := make(chan jobs.Assignment, 1)
	a, err := Attach(s, Config{Clock: c, Heartbeat: hb, Handler: blocking(started, nil)})
	if err != nil {
		t.Fatal(err)
	}
	j := create(t, s, jobs.Spec{})
	recv(t, started)
	a.Close(true) // the connection died
	attach(t, s, c, Config{Handler: ok(`1`)})
	j = await(t, s, j.ID)
	if j.State != jobs.Succeeded || j.Attempt != 2 {
		t.Fatalf("final %+v; want succeeded in attempt 2 before the clock moved", j)
	}
	names, _ := events(t, st, j.ID)
	if count(names, "retrying") != 1 || count(names, "lease") != 0 {
		t.Fatalf("events %v; want one retry and no lease renewal", names)
	}
}

// testJobTimeout: each attempt is cancelled at its deadline to the
// instant, retried after the backoff, and the job fails at MaxAttempts.
func testJobTimeout(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	s := startJobs(t, st, "n1", c, nil)
	w := attach(t, s, c, Config{Handler: blocking(nil, nil)})
	const timeout = 150 * time.Millisecond
	j := create(t, s, jobs.Spec{Timeout: timeout, MaxAttempts: 2})
	for n := 1; n <= 2; n++ {
		waitFor(t, w, "assignment", func(w *Worker) bool { return len(w.Assigned()) == n })
		c.Advance(timeout - time.Millisecond)
		if len(w.Cancels()) != n-1 {
			t.Fatalf("attempt %d: cancelled before its deadline: %+v", n, w.Cancels())
		}
		c.Advance(time.Millisecond)
		if cs := w.Cancels(); len(cs) != n || cs[n-1].Reason != "timeout" || cs[n-1].Attempt != n {
			t.Fatalf("attempt %d: cancels at the deadline %+v; want %d, the last for timeout", n, cs, n)
		}
		waitFor(t, w, "outcome", func(w *Worker) bool { return len(w.Dones()) == n })
		if n == 1 {
			got := get(t, s, j.ID)
			if want := c.Now().Add(10 * time.Millisecond); got.State != jobs.Retrying || !got.RetryAt.Equal(want) {
				t.Fatalf("after attempt 1 %+v; want retrying at the backoff's end %v", got, want)
			}
			c.Advance(10 * time.Millisecond)
		}
	}
	j = await(t, s, j.ID)
	if j.State != jobs.Failed || j.Attempt != 2 || j.Error == "" {
		t.Fatalf("final %+v; want failed after 2 timed-out attempts", j)
	}
}

// testJobCancelGrace: a handler ignoring its cancel is fenced when the
// grace ends, to the instant; the job is canceled, its late completion
// refused, and the worker takes the next job.
func testJobCancelGrace(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	st := openStore(t, open)
	s := startJobs(t, st, "n1", c, nil)
	release := make(chan struct{})
	started := make(chan jobs.Assignment, 2)
	w := attach(t, s, c, Config{IgnoreCancel: true, Handler: blocking(started, release)})
	j := create(t, s, jobs.Spec{})
	recv(t, started)
	if _, err := s.Cancel(t.Context(), j.ID, ""); err != nil {
		t.Fatal(err)
	}
	if len(w.Cancels()) != 1 {
		t.Fatalf("cancels %+v; want the push before Cancel returned", w.Cancels())
	}
	c.Advance(grace - time.Millisecond)
	if got := get(t, s, j.ID); got.State != jobs.Running || !got.CancelRequested || len(w.Fences()) != 0 {
		t.Fatalf("before the grace ended: %+v, fences %+v; want running, cancel requested", got, w.Fences())
	}
	c.Advance(time.Millisecond)
	if got := get(t, s, j.ID); got.State != jobs.Canceled || got.CancelReason != jobs.ReasonAPI {
		t.Fatalf("at the grace's end %+v; want canceled", got)
	}
	if f := w.Fences(); len(f) != 1 || f[0].Reason != "cancel-grace" {
		t.Fatalf("fences %+v; want one for cancel-grace", f)
	}
	next := create(t, s, jobs.Spec{}) // the slot is free again (concurrency 1)
	recv(t, started)
	close(release) // both handlers finish now: the first one's completion is stale
	if got := await(t, s, next.ID); got.State != jobs.Succeeded {
		t.Fatalf("next job %+v", got)
	}
	waitFor(t, w, "reports of both handlers", func(w *Worker) bool { return len(w.Dones()) == 2 })
	for _, d := range w.Dones() {
		if d.JobID == j.ID && !errors.Is(d.Err, jobs.ErrFenced) {
			t.Fatalf("late completion of the fenced attempt: %v; want ErrFenced", d.Err)
		}
	}
	names, _ := events(t, st, j.ID)
	if count(names, "canceled") != 1 || count(names, "succeeded") != 0 {
		t.Fatalf("events %v", names)
	}
}

// testJobRecovery: a new Service on a reopened store sees every job, runs
// what was queued at once, and what a gone worker left running at the
// first sweep after its lease.
func testJobRecovery(t *testing.T, open OpenStore) {
	c := NewClock(time.Now())
	dir := t.TempDir()
	st := open(t, dir)
	s, err := jobs.New(jobs.Config{HeartbeatInterval: hb, Clock: c}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	started := make(chan jobs.Assignment, 1)
	w, err := Attach(s, Config{Types: []string{"slow"}, Heartbeat: hb, Clock: c, Handler: blocking(started, nil)})
	if err != nil {
		t.Fatal(err)
	}
	running := create(t, s, jobs.Spec{Type: "slow"})
	first := recv(t, started)
	c.Advance(time.Millisecond) // List orders by creation time
	queued := create(t, s, jobs.Spec{Type: "later"})
	c.Advance(time.Millisecond)
	canceled := create(t, s, jobs.Spec{Type: "later"})
	if _, err := s.Cancel(t.Context(), canceled.ID, ""); err != nil {
		t.Fatal(err)
	}
	w.Pause() // the worker stops answering, like a process that died with the server
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close(false)

	st2 := reopen(t, open, dir)
	s2 := startJobs(t, st2, "n2", c, nil)
	all, err := s2.List(t.Context(), "", 10)
	if err != nil || len(all) != 3 {
		t.Fatalf("List after restart = %d jobs, %v; want 3", len(all), err)
	}
	if all[0].ID != canceled.ID || all[2].ID != running.ID {
		t.Fatalf("List order %s %s %s; want newest first", all[0].ID, all[1].ID, all[2].ID)
	}
	attach(t, s2, c, Config{Handler: ok(`"after"`)})
	if j := await(t, s2, queued.ID); j.State != jobs.Succeeded || string(j.Result) != `"after"` {
		t.Fatalf("queued job after restart: %+v", j)
	}
	c.Advance(first.LeaseUntil.Sub(c.Now()))
	if j := get(t, s2, running.ID); j.State != jobs.Running || j.Attempt != 1 {
		t.Fatalf("running job at its lease's end: %+v; want still attempt 1", j)
	}
	c.Advance(hb / 2)
	if j := await(t, s2, running.ID); j.State != jobs.Succeeded || j.Attempt != 2 || string(j.Result) != `"after"` {
		t.Fatalf("running job after restart: %+v", j)
	}
	if j := get(t, s2, canceled.ID); j.State != jobs.Canceled {
		t.Fatalf("canceled job after restart: %+v", j)
	}
}
