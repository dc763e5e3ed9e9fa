package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/jobstest"
	"github.com/tether-run/tether/store/pebblestore"
)

// BenchmarkNoopJobs measures no-op jobs end to end in process on Pebble
// (fsync on): create, claim, assign to an in-process worker, complete. It
// reports jobs/s: b.N jobs are created (one create at a time), then 4
// workers of concurrency 8 attach and run them all; the time is from the
// attach to the last outcome recorded.
//
//	go test -run XXX -bench NoopJobs -benchtime 2000x ./jobs/
func BenchmarkNoopJobs(b *testing.B) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, _ := jobs.New(jobs.Config{}, st, nil, nil)
	s.Start(context.Background())
	defer s.Stop(context.Background())
	ids := make([]string, b.N)
	for i := range ids {
		j, _, err := s.Create(context.Background(), jobs.Spec{Type: "noop"}, "")
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = j.ID
	}
	done := make(chan string, b.N)
	for _, id := range ids {
		go func() {
			s.Await(context.Background(), id)
			done <- id
		}()
	}
	b.ResetTimer()
	start := time.Now()
	for range 4 {
		w, err := jobstest.Attach(s, jobstest.Config{Concurrency: 8, Heartbeat: time.Second,
			Handler: func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
				return nil, nil
			}})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close(false)
	}
	for range ids {
		<-done
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
