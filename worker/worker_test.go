package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/worker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runWorker starts w.Run on a goroutine; the test's cleanup shuts it down
// and checks that Run returned nil.
func runWorker(t testing.TB, cfg worker.Config, handlers map[string]worker.Handler) *worker.Worker {
	t.Helper()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for typ, h := range handlers {
		w.Handle(typ, h)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w
}

func TestResultRecorded(t *testing.T) {
	transports(t, func(t *testing.T, url func(*node) string) {
		n := startNode(t, nodeConfig{})
		runWorker(t, worker.Config{URL: url(n), ID: "w1"}, map[string]worker.Handler{
			"double": func(ctx context.Context, job *worker.Job) (any, error) {
				var p struct{ N int }
				if err := json.Unmarshal(job.Payload, &p); err != nil {
					return nil, err
				}
				if err := job.Progress(ctx, map[string]int{"half": 1}); err != nil {
					return nil, err
				}
				return map[string]int{"n": 2 * p.N}, nil
			},
		})
		id := n.create(t, jobs.Spec{Type: "double", Payload: json.RawMessage(`{"n":21}`)})
		j := n.await(t, id)
		if j.State != jobs.Succeeded || string(j.Result) != `{"n":42}` || j.Worker != "w1" || j.Attempt != 1 {
			t.Fatalf("got %s result %s worker %q attempt %d, want succeeded {\"n\":42} w1 1", j.State, j.Result, j.Worker, j.Attempt)
		}
	})
}

func TestHandlerErrorRetries(t *testing.T) {
	n := startNode(t, nodeConfig{})
	var calls atomic.Int32
	runWorker(t, worker.Config{URL: n.WSURL}, map[string]worker.Handler{
		"flaky": func(ctx context.Context, job *worker.Job) (any, error) {
			if calls.Add(1) < 3 {
				return nil, errors.New("not yet")
			}
			return job.Attempt, nil
		},
	})
	id := n.create(t, jobs.Spec{Type: "flaky", MaxAttempts: 5})
	if j := n.await(t, id); j.State != jobs.Succeeded || string(j.Result) != "3" {
		t.Fatalf("got %s result %s (%s), want succeeded at attempt 3", j.State, j.Result, j.Error)
	}
}

// A cancel reaches the handler's context, pushed; the job ends canceled
// and the same worker runs the next job.
func TestCancelReachesContext(t *testing.T) {
	transports(t, func(t *testing.T, url func(*node) string) {
		n := startNode(t, nodeConfig{})
		started := make(chan string, 2)
		stopped := make(chan error, 2)
		runWorker(t, worker.Config{URL: url(n), Concurrency: 1}, map[string]worker.Handler{
			"block": func(ctx context.Context, job *worker.Job) (any, error) {
				started <- job.ID
				<-ctx.Done()
				stopped <- context.Cause(ctx)
				return nil, ctx.Err()
			},
			"noop": func(context.Context, *worker.Job) (any, error) { return "next", nil },
		})
		id := n.create(t, jobs.Spec{Type: "block"})
		<-started
		t0 := time.Now()
		if _, err := n.Jobs.Cancel(context.Background(), id, jobs.ReasonAPI); err != nil {
			t.Fatal(err)
		}
		if cause := <-stopped; !errors.Is(cause, worker.ErrCanceled) {
			t.Fatalf("cause %v, want ErrCanceled", cause)
		}
		t.Logf("cancel to ctx.Done: %v", time.Since(t0))
		if j := n.await(t, id); j.State != jobs.Canceled {
			t.Fatalf("state %s, want canceled", j.State)
		}
		next := n.create(t, jobs.Spec{Type: "noop"})
		if j := n.await(t, next); j.State != jobs.Succeeded {
			t.Fatalf("next job: %s, want succeeded", j.State)
		}
	})
}

// A handler that ignores its cancel past CancelGrace is fenced: the job is
// recorded canceled, the slot freed at once (concurrency 1: the next job
// runs while the stubborn handler still sleeps), its late result dropped.
func TestFencedFreesSlot(t *testing.T) {
	n := startNode(t, nodeConfig{CancelGrace: 200 * time.Millisecond})
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	runWorker(t, worker.Config{URL: n.TCPAddr, Concurrency: 1}, map[string]worker.Handler{
		"stubborn": func(ctx context.Context, job *worker.Job) (any, error) {
			started <- struct{}{}
			<-release // ignores ctx
			return "late", nil
		},
		"noop": func(context.Context, *worker.Job) (any, error) { return "next", nil },
	})
	defer close(release)
	id := n.create(t, jobs.Spec{Type: "stubborn"})
	<-started
	if _, err := n.Jobs.Cancel(context.Background(), id, jobs.ReasonAPI); err != nil {
		t.Fatal(err)
	}
	if j := n.await(t, id); j.State != jobs.Canceled {
		t.Fatalf("state %s, want canceled", j.State)
	}
	next := n.create(t, jobs.Spec{Type: "noop"})
	if j := n.await(t, next); j.State != jobs.Succeeded {
		t.Fatalf("next job: %s, want succeeded while the fenced handler still runs", j.State)
	}
}

// Shutdown: drain, grace, then the job still running is handed back at
// once (queued, the attempt not counted) and another worker finishes it.
func TestShutdownHandsBack(t *testing.T) {
	n := startNode(t, nodeConfig{})
	started := make(chan struct{}, 1)
	w, err := worker.New(worker.Config{URL: n.WSURL, ID: "leaving", ShutdownGrace: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("long", func(ctx context.Context, job *worker.Job) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, context.Cause(ctx)
	})
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	id := n.create(t, jobs.Spec{Type: "long", MaxAttempts: 1})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("shutdown took %v", time.Since(t0))
	j := n.waitState(t, id, "queued", func(j jobs.Job) bool { return j.State == jobs.Queued })
	if j.Worker != "leaving" {
		t.Logf("queued job: %+v", j)
	}
	runWorker(t, worker.Config{URL: n.WSURL, ID: "next"}, map[string]worker.Handler{
		"long": func(context.Context, *worker.Job) (any, error) { return "done", nil },
	})
	// MaxAttempts 1: a release must not count, or this would fail.
	if j := n.await(t, id); j.State != jobs.Succeeded || j.Worker != "next" {
		t.Fatalf("got %s by %q, want succeeded by next", j.State, j.Worker)
	}
}
