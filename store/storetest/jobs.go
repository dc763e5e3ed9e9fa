package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/jobstest"
	"github.com/tether-run/tether/store"
)

// The Jobs group runs package jobs on the engine: claims, leases, fencing
// and cancellation are conditional appends (AppendOptions.ExpectLatest), so
// an engine that gets those subtly wrong shows it here as a job run twice,
// an outcome recorded twice, or a stale worker overwriting a result.
var jobsCases = []testCase{
	{"CreateClaimComplete", testJobRun},
	{"OneClaimAcrossNodes", testJobOneClaim},
	{"LeaseExpiryRunsElsewhere", testJobLeaseExpiry},
	{"HeartbeatKeepsLongJob", testJobHeartbeat},
	{"StaleAttemptFenced", testJobFenced},
	{"CancelQueued", testJobCancelQueued},
	{"CancelRunning", testJobCancelRunning},
	{"CancelFromOtherNode", testJobCancelOtherNode},
	{"CancelGraceFences", testJobCancelGrace},
	{"TimeoutRetries", testJobTimeout},
	{"ReleaseDoesNotCount", testJobRelease},
	{"MaxAttemptsFailedKept", testJobMaxAttempts},
	{"WorkerGoneRetriesAtOnce", testJobWorkerGone},
	{"IdempotencyKey", testJobIdempotency},
	{"RecoverAfterRestart", testJobRecovery},
}

// RunJobs runs only the Jobs group against e.
func RunJobs(t *testing.T, e Engine) {
	for _, c := range jobsCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, e)
		})
	}
}

// hb is the heartbeat interval of the suite's services: short, so that
// leases (3 intervals) run out fast.
const hb = 100 * time.Millisecond

func startJobs(t *testing.T, st store.Store, node string, mod func(*jobs.Config)) *jobs.Service {
	t.Helper()
	cfg := jobs.Config{
		Store: st, NodeID: node, HeartbeatInterval: hb, LeaseIntervals: 3,
		CancelGrace: 300 * time.Millisecond, FollowGrace: 300 * time.Millisecond,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := jobs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

func attach(t *testing.T, s *jobs.Service, cfg jobstest.Config) *jobstest.Worker {
	t.Helper()
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = hb
	}
	w, err := jobstest.Attach(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(false) })
	return w
}

func create(t *testing.T, s *jobs.Service, spec jobs.Spec) jobs.Job {
	t.Helper()
	if spec.Type == "" {
		spec.Type = "t"
	}
	j, created, err := s.Create(t.Context(), spec, "")
	if err != nil || !created {
		t.Fatalf("Create: %+v, %v, %v", j, created, err)
	}
	return j
}

// await waits for the job to be final, failing after d.
func await(t *testing.T, s *jobs.Service, id string, d time.Duration) jobs.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	j, err := s.Await(ctx, id)
	if err != nil {
		t.Fatalf("Await(%s): %v; last seen %+v", id, err, j)
	}
	return j
}

// events returns the event names on a job's channel.
func events(t *testing.T, st store.Store, id string) ([]string, []map[string]any) {
	t.Helper()
	var names []string
	var evs []map[string]any
	for _, m := range readAll(t, st, jobs.ChannelPrefix+id, store.Start, 100) {
		var ev map[string]any
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("job event %q: %v", m.Data, err)
		}
		names = append(names, ev["event"].(string))
		evs = append(evs, ev)
	}
	return names, evs
}

func count(names []string, name string) int {
	n := 0
	for _, x := range names {
		if x == name {
			n++
		}
	}
	return n
}

func ok(result string) jobstest.Handler {
	return func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		return json.RawMessage(result), nil
	}
}

// blocking runs until its context ends (then fails with its cause) or
// release is closed (then succeeds).
func blocking(started chan<- jobs.Assignment, release <-chan struct{}) jobstest.Handler {
	return func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		if started != nil {
			started <- a
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
			return json.RawMessage(`"released"`), nil
		}
	}
}

func testJobRun(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	attach(t, s, jobstest.Config{Handler: func(ctx context.Context, a jobs.Assignment, progress func(string) error) (json.RawMessage, error) {
		if err := progress(`{"pct":50}`); err != nil {
			return nil, err
		}
		return json.RawMessage(`{"echo":` + string(a.Payload) + `}`), nil
	}})
	j := create(t, s, jobs.Spec{Payload: json.RawMessage(`{"n":7}`), OnDisconnect: jobs.Detach})
	if j.State != jobs.Queued || j.Channel != "job."+j.ID || j.MaxAttempts != 3 {
		t.Fatalf("created %+v", j)
	}
	j = await(t, s, j.ID, 10*time.Second)
	if j.State != jobs.Succeeded || j.Attempt != 1 || string(j.Result) != `{"echo":{"n":7}}` || j.Ended.IsZero() {
		t.Fatalf("final %+v", j)
	}
	names, _ := events(t, st, j.ID)
	if fmt.Sprint(names) != "[queued running progress succeeded]" {
		t.Fatalf("events %v; want [queued running progress succeeded]", names)
	}
	got, err := s.Get(t.Context(), j.ID)
	if err != nil || string(got.Result) != string(j.Result) || got.Cursor != j.Cursor {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := s.Get(t.Context(), "00000000000000000000000000"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("Get(unknown) = %v; want ErrNotFound", err)
	}
}

// testJobOneClaim races two nodes (two Services on one store) with several
// workers each for the same jobs: each job must run exactly once.
func testJobOneClaim(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	nodes := []*jobs.Service{startJobs(t, st, "a", nil), startJobs(t, st, "b", nil)}
	var mu sync.Mutex
	runs := map[string]int{}
	h := func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		mu.Lock()
		runs[a.JobID]++
		mu.Unlock()
		return json.RawMessage(`1`), nil
	}
	for _, s := range nodes {
		for range 2 {
			attach(t, s, jobstest.Config{Concurrency: 4, Handler: h})
		}
	}
	const n = 100
	ids := make([]string, n)
	for i := range ids {
		ids[i] = create(t, nodes[i%2], jobs.Spec{}).ID
	}
	for i, id := range ids {
		j := await(t, nodes[(i+1)%2], id, 20*time.Second)
		if j.State != jobs.Succeeded || j.Attempt != 1 {
			t.Fatalf("job %s: %+v", id, j)
		}
		names, _ := events(t, st, id)
		if count(names, "running") != 1 || count(names, "succeeded") != 1 {
			t.Fatalf("job %s events %v; want one claim and one outcome", id, names)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if runs[id] != 1 {
			t.Errorf("job %s ran %d times", id, runs[id])
		}
	}
}

// testJobLeaseExpiry: a worker stops heartbeating (paused); its job runs on
// another worker within two heartbeat intervals after the lease ends.
func testJobLeaseExpiry(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	started := make(chan jobs.Assignment, 2)
	a := attach(t, s, jobstest.Config{ID: "a", Handler: blocking(started, nil)})
	j := create(t, s, jobs.Spec{})
	first := <-started
	a.Pause()
	attach(t, s, jobstest.Config{ID: "b", Handler: blocking(started, nil)})
	second := <-started
	took := time.Now()
	if second.JobID != j.ID || second.Attempt != 2 {
		t.Fatalf("second assignment %+v; want job %s attempt 2", second, j.ID)
	}
	_, evs := events(t, st, j.ID)
	var leaseEnd time.Time
	for _, ev := range evs {
		if ev["attempt"] == float64(first.Attempt) && ev["lease_until"] != nil {
			leaseEnd, _ = time.Parse(time.RFC3339Nano, ev["lease_until"].(string))
		}
	}
	if late := took.Sub(leaseEnd); late > 2*hb {
		t.Fatalf("job ran elsewhere %v after its lease ended; want within 2 intervals (%v)", late, 2*hb)
	}
	t.Logf("ran elsewhere %v after the lease ended (heartbeat interval %v)", took.Sub(leaseEnd), hb)
}

// testJobHeartbeat: a job running for many lease lengths, heartbeated, is
// never taken away, though another worker is idle.
func testJobHeartbeat(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	release := make(chan struct{})
	started := make(chan jobs.Assignment, 1)
	attach(t, s, jobstest.Config{ID: "a", Handler: blocking(started, release)})
	j := create(t, s, jobs.Spec{})
	<-started
	idle := attach(t, s, jobstest.Config{ID: "b", Handler: ok(`2`)})
	time.AfterFunc(12*hb, func() { close(release) }) // four lease lengths
	j = await(t, s, j.ID, 10*time.Second)
	if j.State != jobs.Succeeded || j.Attempt != 1 || j.Worker != "a" || string(j.Result) != `"released"` {
		t.Fatalf("final %+v; want succeeded by a in attempt 1", j)
	}
	if n := len(idle.Assigned()); n != 0 {
		t.Fatalf("idle worker got %d assignments", n)
	}
}

// testJobFenced: a worker paused past its lease wakes up and completes its
// old attempt: refused, and the outcome stays the one recorded by the
// worker that took over.
func testJobFenced(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	releaseA := make(chan struct{})
	started := make(chan jobs.Assignment, 2)
	a := attach(t, s, jobstest.Config{ID: "a", Handler: blocking(started, releaseA)})
	j := create(t, s, jobs.Spec{})
	<-started
	a.Pause()
	close(releaseA) // the handler finishes, but the paused worker cannot report yet
	attach(t, s, jobstest.Config{ID: "b", Handler: ok(`"b"`)})
	j = await(t, s, j.ID, 10*time.Second)
	if j.State != jobs.Succeeded || j.Attempt != 2 || string(j.Result) != `"b"` {
		t.Fatalf("final %+v; want b's result in attempt 2", j)
	}
	a.Resume()
	if !a.WaitFor(5*time.Second, func(w *jobstest.Worker) bool { return len(w.Dones()) == 1 }) {
		t.Fatal("the resumed worker never reported")
	}
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
	if got, _ := s.Get(t.Context(), j.ID); string(got.Result) != `"b"` {
		t.Fatalf("result after the stale completion: %s", got.Result)
	}
}

func testJobCancelQueued(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	j := create(t, s, jobs.Spec{Type: "nobody-runs-this"})
	c, err := s.Cancel(t.Context(), j.ID, "")
	if err != nil || c.State != jobs.Canceled || c.CancelReason != jobs.ReasonAPI {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	w := attach(t, s, jobstest.Config{Types: []string{"nobody-runs-this"}, Handler: ok(`1`)})
	again, err := s.Cancel(t.Context(), j.ID, "")
	if err != nil || again.State != jobs.Canceled || again.Cursor != c.Cursor {
		t.Fatalf("second Cancel = %+v, %v; want unchanged", again, err)
	}
	// The worker runs the next job, never the canceled one.
	next := create(t, s, jobs.Spec{Type: "nobody-runs-this"})
	if got := await(t, s, next.ID, 10*time.Second); got.State != jobs.Succeeded {
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
// job is canceled, and the worker takes the next job.
func cancelRunning(t *testing.T, st store.Store, s, via *jobs.Service) {
	started := make(chan jobs.Assignment, 2)
	w := attach(t, s, jobstest.Config{Handler: blocking(started, nil)})
	j := create(t, s, jobs.Spec{})
	<-started
	if _, err := via.Cancel(t.Context(), j.ID, ""); err != nil {
		t.Fatal(err)
	}
	j = await(t, s, j.ID, 10*time.Second)
	if j.State != jobs.Canceled || j.CancelReason != jobs.ReasonAPI || j.Attempt != 1 {
		t.Fatalf("final %+v; want canceled (api) in attempt 1", j)
	}
	w.WaitFor(5*time.Second, func(w *jobstest.Worker) bool { return len(w.Dones()) == 1 })
	if d := w.Dones(); len(d) != 1 || !d[0].Canceled || d[0].Err != nil {
		t.Fatalf("worker saw %+v; want one cancelled handler, its outcome accepted", d)
	}
	if len(w.Fences()) != 0 {
		t.Fatalf("fenced %+v; the handler returned in time", w.Fences())
	}
	names, _ := events(t, st, j.ID)
	if fmt.Sprint(names) != "[queued running cancel_requested canceled]" {
		// Heartbeats may add lease events in between.
		if count(names, "cancel_requested") != 1 || count(names, "canceled") != 1 {
			t.Fatalf("events %v", names)
		}
	}
	next := create(t, s, jobs.Spec{})
	<-started
	via.Cancel(t.Context(), next.ID, "")
	if got := await(t, s, next.ID, 10*time.Second); got.State != jobs.Canceled {
		t.Fatalf("next job %+v", got)
	}
	if n := len(w.Assigned()); n != 2 {
		t.Fatalf("worker got %d assignments; want 2", n)
	}
}

func testJobCancelRunning(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	cancelRunning(t, st, s, s)
}

// testJobCancelOtherNode: the cancel is written by another node; the node
// holding the worker sees it on the job's channel and pushes it.
func testJobCancelOtherNode(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	cancelRunning(t, st, startJobs(t, st, "a", nil), startJobs(t, st, "b", nil))
}

// testJobCancelGrace: a handler ignoring its cancel is fenced after the
// grace; the job is canceled, its late completion refused, and the worker
// takes the next job.
func testJobCancelGrace(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	release := make(chan struct{})
	started := make(chan jobs.Assignment, 2)
	w := attach(t, s, jobstest.Config{IgnoreCancel: true, Handler: blocking(started, release)})
	j := create(t, s, jobs.Spec{})
	<-started
	t0 := time.Now()
	if _, err := s.Cancel(t.Context(), j.ID, ""); err != nil {
		t.Fatal(err)
	}
	j = await(t, s, j.ID, 10*time.Second)
	if j.State != jobs.Canceled {
		t.Fatalf("final %+v; want canceled", j)
	}
	if took := time.Since(t0); took < 300*time.Millisecond {
		t.Fatalf("canceled after %v; before the 300ms grace", took)
	}
	if !w.WaitFor(5*time.Second, func(w *jobstest.Worker) bool { return len(w.Fences()) == 1 }) {
		t.Fatal("worker not told it was fenced")
	}
	next := create(t, s, jobs.Spec{}) // the slot is free again (concurrency 1)
	<-started
	close(release) // both handlers finish now: the first one's completion is stale
	if got := await(t, s, next.ID, 10*time.Second); got.State != jobs.Succeeded {
		t.Fatalf("next job %+v", got)
	}
	if !w.WaitFor(5*time.Second, func(w *jobstest.Worker) bool { return len(w.Dones()) == 2 }) {
		t.Fatal("handlers did not report")
	}
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

func testJobTimeout(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	w := attach(t, s, jobstest.Config{Handler: blocking(nil, nil)})
	j := create(t, s, jobs.Spec{Timeout: 150 * time.Millisecond, MaxAttempts: 2})
	j = await(t, s, j.ID, 10*time.Second)
	if j.State != jobs.Failed || j.Attempt != 2 || j.Error == "" {
		t.Fatalf("final %+v; want failed after 2 timed-out attempts", j)
	}
	cs := w.Cancels()
	if len(cs) != 2 || cs[0].Reason != "timeout" {
		t.Fatalf("cancels %+v; want 2 with reason timeout", cs)
	}
}

func testJobRelease(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	started := make(chan jobs.Assignment, 1)
	w := attach(t, s, jobstest.Config{ID: "a", Handler: blocking(started, nil)})
	j := create(t, s, jobs.Spec{MaxAttempts: 2})
	a := <-started
	w.W.Drain()
	if err := w.W.Release(t.Context(), a.JobID, a.Attempt); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(t.Context(), j.ID)
	if got.State != jobs.Queued || got.Attempt != 1 {
		t.Fatalf("after release %+v; want queued", got)
	}
	var mu sync.Mutex
	tries := 0
	attach(t, s, jobstest.Config{ID: "b", Handler: func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		mu.Lock()
		defer mu.Unlock()
		if tries++; tries == 1 {
			return nil, jobstest.ErrBoom
		}
		return json.RawMessage(`"ok"`), nil
	}})
	// Attempt 2 fails; had the release counted, that would be the last.
	got = await(t, s, j.ID, 10*time.Second)
	if got.State != jobs.Succeeded || got.Attempt != 3 {
		t.Fatalf("final %+v; want succeeded in attempt 3 (the release did not count)", got)
	}
}

func testJobMaxAttempts(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", nil)
	attach(t, s, jobstest.Config{Handler: func(context.Context, jobs.Assignment, func(string) error) (json.RawMessage, error) {
		return nil, jobstest.ErrBoom
	}})
	j := create(t, s, jobs.Spec{MaxAttempts: 3})
	j = await(t, s, j.ID, 10*time.Second)
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

func testJobWorkerGone(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	s := startJobs(t, st, "n1", func(c *jobs.Config) { c.HeartbeatInterval = time.Second }) // long leases
	started := make(chan jobs.Assignment, 1)
	a, err := jobstest.Attach(s, jobstest.Config{Handler: blocking(started, nil)})
	if err != nil {
		t.Fatal(err)
	}
	j := create(t, s, jobs.Spec{})
	<-started
	t0 := time.Now()
	a.Close(true) // the connection died
	attach(t, s, jobstest.Config{Handler: ok(`1`)})
	j = await(t, s, j.ID, 10*time.Second)
	if took := time.Since(t0); j.State != jobs.Succeeded || j.Attempt != 2 || took > time.Second {
		t.Fatalf("final %+v after %v; want succeeded in attempt 2 before the 3s lease ended", j, took)
	}
}

func testJobIdempotency(t *testing.T, e Engine) {
	st, _ := open(t, e, Options{})
	a, b := startJobs(t, st, "a", nil), startJobs(t, st, "b", nil)
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
	other, _, _ := a.Create(t.Context(), jobs.Spec{Type: "t"}, "key-2")
	if other.ID == id {
		t.Fatal("two keys, one job")
	}
	names, _ := events(t, st, id)
	if count(names, "queued") != 1 {
		t.Fatalf("events %v", names)
	}
}

// testJobRecovery: a new Service on a reopened store sees every job, and
// runs what was queued or left running by a worker that is gone.
func testJobRecovery(t *testing.T, e Engine) {
	dir := t.TempDir()
	st := e.Open(t, dir, Options{})
	s, err := jobs.New(jobs.Config{Store: st, HeartbeatInterval: hb})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	started := make(chan jobs.Assignment, 1)
	w, _ := jobstest.Attach(s, jobstest.Config{Types: []string{"slow"}, Heartbeat: hb, Handler: blocking(started, nil)})
	running, _, _ := s.Create(t.Context(), jobs.Spec{Type: "slow"}, "")
	<-started
	queued, _, _ := s.Create(t.Context(), jobs.Spec{Type: "later"}, "")
	canceled, _, _ := s.Create(t.Context(), jobs.Spec{Type: "later"}, "")
	s.Cancel(t.Context(), canceled.ID, "")
	w.Pause() // the worker stops answering, like a process that died with the server
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustClose(t, st)
	w.Close(false)

	st2 := reopen(t, e, dir, Options{})
	s2 := startJobs(t, st2, "n2", nil)
	all, err := s2.List(t.Context(), "", 10)
	if err != nil || len(all) != 3 {
		t.Fatalf("List after restart = %d jobs, %v; want 3", len(all), err)
	}
	if all[0].ID != canceled.ID || all[2].ID != running.ID {
		t.Fatalf("List order %s %s %s; want newest first", all[0].ID, all[1].ID, all[2].ID)
	}
	attach(t, s2, jobstest.Config{Handler: ok(`"after"`)})
	for _, id := range []string{running.ID, queued.ID} {
		if j := await(t, s2, id, 10*time.Second); j.State != jobs.Succeeded || string(j.Result) != `"after"` {
			t.Fatalf("job %s after restart: %+v", id, j)
		}
	}
	if j, _ := s2.Get(t.Context(), canceled.ID); j.State != jobs.Canceled {
		t.Fatalf("canceled job after restart: %+v", j)
	}
}
