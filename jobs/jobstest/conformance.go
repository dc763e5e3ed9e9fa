package jobstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/store"
)

// OpenStore opens the storage engine under test with its data in dir,
// failing t if it cannot. Opening dir again after the first store was
// closed must see the same data: that is how a restart is tested. The
// cases close what it returns.
type OpenStore func(t testing.TB, dir string) store.Store

// RunConformance runs package jobs on a storage engine, every case a
// parallel subtest on its own stores: claims, leases, fencing and
// cancellation are conditional appends (store.AppendOptions.ExpectLatest),
// so an engine that gets those subtly wrong shows it here as a job run
// twice, an outcome recorded twice, or a stale worker overwriting a
// result. Every engine's tests call it:
//
//	func TestJobs(t *testing.T) {
//		jobstest.RunConformance(t, func(t testing.TB, dir string) store.Store {
//			s, err := myengine.Open(myengine.Config{Dir: dir})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The cases about time (leases, heartbeats, timeouts, graces, restarts)
// run on a Clock moved by hand, so they wait for no lease to run out and
// check each bound to the instant; the others run on the real clock and
// wait only on signals (an assignment, a recorded outcome, Await).
func RunConformance(t *testing.T, open OpenStore) {
	if open == nil {
		t.Fatal("jobstest: OpenStore is nil")
	}
	for _, c := range conformanceCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, open)
		})
	}
}

var conformanceCases = []struct {
	name string
	fn   func(t *testing.T, open OpenStore)
}{
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

const (
	// hb is the heartbeat interval of the cases' services and workers: a
	// lease is 3 of them, and the sweep runs every half.
	hb = 100 * time.Millisecond
	// grace is the cancel and follow grace of the cases' services.
	grace = 300 * time.Millisecond
	// signalBound is how long a case waits for something that must happen
	// without the clock moving: generous for a loaded machine under -race.
	signalBound = 10 * time.Second
)

// openStore opens a store on a fresh directory and closes it when the test
// ends.
func openStore(t *testing.T, open OpenStore) store.Store {
	t.Helper()
	return reopen(t, open, t.TempDir())
}

// reopen opens a store on dir and closes it when the test ends (a store
// the test closed already answers ErrClosed then, which is fine).
func reopen(t *testing.T, open OpenStore, dir string) store.Store {
	t.Helper()
	st := open(t, dir)
	if st == nil {
		t.Fatal("OpenStore returned nil")
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

// startJobs starts a Service on st; clock nil means the real time.
func startJobs(t *testing.T, st store.Store, node string, clock *Clock, mod func(*jobs.Config)) *jobs.Service {
	t.Helper()
	cfg := jobs.Config{
		NodeID: node, HeartbeatInterval: hb, LeaseIntervals: 3,
		CancelGrace: grace, FollowGrace: grace,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
	}
	if clock != nil {
		cfg.Clock = clock
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := jobs.New(cfg, st, nil, nil)
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

// attach attaches a worker heartbeating every hb (on clock, if set) and
// closes it when the test ends.
func attach(t *testing.T, s *jobs.Service, clock *Clock, cfg Config) *Worker {
	t.Helper()
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = hb
	}
	if clock != nil {
		cfg.Clock = clock
	}
	w, err := Attach(s, cfg)
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

func get(t *testing.T, s *jobs.Service, id string) jobs.Job {
	t.Helper()
	j, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

// await waits for the job to be final.
func await(t *testing.T, s *jobs.Service, id string) jobs.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), signalBound)
	defer cancel()
	j, err := s.Await(ctx, id)
	if err != nil {
		t.Fatalf("Await(%s): %v; last seen %+v", id, err, j)
	}
	return j
}

// recv waits for the next assignment a handler reports.
func recv(t *testing.T, started <-chan jobs.Assignment) jobs.Assignment {
	t.Helper()
	select {
	case a := <-started:
		return a
	case <-time.After(signalBound):
		t.Fatalf("no assignment within %v", signalBound)
		return jobs.Assignment{}
	}
}

// waitFor waits for cond on w's records, failing after signalBound.
func waitFor(t *testing.T, w *Worker, what string, cond func(w *Worker) bool) {
	t.Helper()
	if !w.WaitFor(signalBound, cond) {
		t.Fatalf("worker %s: not within %v", what, signalBound)
	}
}

// events returns the event names on a job's channel, and the events.
func events(t *testing.T, st store.Store, id string) ([]string, []map[string]any) {
	t.Helper()
	var names []string
	var evs []map[string]any
	after := store.Start
	for {
		r, err := st.Read(t.Context(), jobs.ChannelPrefix+id, after, 100)
		if err != nil {
			t.Fatalf("Read(job %s): %v", id, err)
		}
		for _, m := range r.Messages {
			var ev map[string]any
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatalf("job event %q: %v", m.Data, err)
			}
			names = append(names, ev["event"].(string))
			evs = append(evs, ev)
		}
		if len(r.Messages) == 0 {
			return names, evs
		}
		after = r.Next
	}
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

// eventTime reads a time field of an event.
func eventTime(t *testing.T, ev map[string]any, field string) time.Time {
	t.Helper()
	s, _ := ev[field].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("event %v: %s: %v", ev, field, err)
	}
	return at
}

func ok(result string) Handler {
	return func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		return json.RawMessage(result), nil
	}
}

// blocking runs until its context ends (then fails with its cause) or
// release is closed (then succeeds).
func blocking(started chan<- jobs.Assignment, release <-chan struct{}) Handler {
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

func testJobRun(t *testing.T, open OpenStore) {
	st := openStore(t, open)
	s := startJobs(t, st, "n1", nil, nil)
	attach(t, s, nil, Config{Handler: func(ctx context.Context, a jobs.Assignment, progress func(string) error) (json.RawMessage, error) {
		if err := progress(`{"pct":50}`); err != nil {
			return nil, err
		}
		return json.RawMessage(`{"echo":` + string(a.Payload) + `}`), nil
	}})
	j := create(t, s, jobs.Spec{Payload: json.RawMessage(`{"n":7}`), OnDisconnect: jobs.Detach})
	if j.State != jobs.Queued || j.Channel != "job."+j.ID || j.MaxAttempts != jobs.DefaultMaxAttempts {
		t.Fatalf("created %+v", j)
	}
	j = await(t, s, j.ID)
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
func testJobOneClaim(t *testing.T, open OpenStore) {
	st := openStore(t, open)
	nodes := []*jobs.Service{startJobs(t, st, "a", nil, nil), startJobs(t, st, "b", nil, nil)}
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
			attach(t, s, nil, Config{Concurrency: 4, Handler: h})
		}
	}
	const n = 100
	ids := make([]string, n)
	for i := range ids {
		ids[i] = create(t, nodes[i%2], jobs.Spec{}).ID
	}
	for i, id := range ids {
		j := await(t, nodes[(i+1)%2], id)
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
