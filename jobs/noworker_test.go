package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-run/tether/jobs"
)

// TestCreateWithoutWorker: a job whose type no attached worker runs is
// created with a warning and counted; with RequireWorker it is refused
// (ErrNoWorker) and nothing is stored; a worker for the type (or for any
// type) lifts both.
func TestCreateWithoutWorker(t *testing.T) {
	for _, require := range []bool{false, true} {
		st := pebble(t)
		reg := prometheus.NewRegistry()
		s, err := jobs.New(jobs.Config{HeartbeatInterval: 100 * time.Millisecond, Clock: clock(), RequireWorker: require}, st, nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		w, _ := s.AttachWorker("w1", []string{"resize"}, 1, newRecorder())
		j, _, err := s.Create(t.Context(), jobs.Spec{Type: "mail"}, "")
		switch {
		case require && !errors.Is(err, jobs.ErrNoWorker):
			t.Fatalf("RequireWorker: Create(mail) = %+v, %v; want ErrNoWorker", j, err)
		case require:
			if l, _ := s.List(t.Context(), "", 10); len(l) != 0 {
				t.Fatalf("RequireWorker: stored %d jobs, want none", len(l))
			}
		case err != nil || j.Warning == "":
			t.Fatalf("Create(mail) = warning %q, %v; want a warning", j.Warning, err)
		}
		if got := counter(reg, "tether_jobs_created_without_worker_total"); got != map[bool]float64{false: 1, true: 0}[require] {
			t.Fatalf("require=%v: tether_jobs_created_without_worker_total = %v", require, got)
		}
		if j, _, err := s.Create(t.Context(), jobs.Spec{Type: "resize"}, ""); err != nil || j.Warning != "" {
			t.Fatalf("Create(resize) with its worker = warning %q, %v; want none", j.Warning, err)
		}
		w.Detach(false)
		s.AttachWorker("any", nil, 1, newRecorder())
		if j, _, err := s.Create(t.Context(), jobs.Spec{Type: "mail"}, ""); err != nil || j.Warning != "" {
			t.Fatalf("Create(mail) with a worker of any type = warning %q, %v; want none", j.Warning, err)
		}
		s.Stop(context.Background())
	}
}

func counter(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}
