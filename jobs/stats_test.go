package jobs_test

import (
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
)

// Overview counts every job by state, lists the newest live and final
// ones up to its bounds, newest first, and the workers with their
// attempts.
func TestOverview(t *testing.T) {
	c := clock()
	s := newService(t, pebble(t), c)
	ctx := t.Context()
	var ids []string
	for range 6 {
		j, _, err := s.Create(ctx, jobs.Spec{Type: "t"}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
		c.Advance(time.Millisecond) // distinct creation times
	}
	for _, id := range ids[:3] { // the three oldest end
		if _, err := s.Cancel(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	r := newRecorder()
	if _, err := s.AttachWorker("w1", []string{"t"}, 1, r); err != nil {
		t.Fatal(err)
	}
	<-r.pushed // one of the three queued jobs is assigned to it
	var o jobs.Overview
	deadline := time.Now().Add(10 * time.Second)
	for {
		o = s.Overview(2, 2)
		if o.States[jobs.Running] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling interval against the deadline
	}
	if o.States[jobs.Canceled] != 3 || o.States[jobs.Running] != 1 || o.States[jobs.Queued] != 2 {
		t.Fatalf("States = %v, want 3 canceled, 1 running, 2 queued", o.States)
	}
	var got []string
	for _, j := range o.Jobs {
		got = append(got, j.ID)
		if j.Payload != nil || j.Result != nil {
			t.Errorf("job %s carries its payload or result", j.ID)
		}
	}
	want := []string{ids[5], ids[4], ids[2], ids[1]}
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("Jobs = %v, want %v (two newest live, then two newest final)", got, want)
	}
	if len(o.Workers) != 1 || o.Workers[0].ID != "w1" || len(o.Workers[0].Running) != 1 || o.Workers[0].Running[0].Type != "t" || o.Workers[0].Concurrency != 1 {
		t.Errorf("Workers = %+v, want w1 running one job of t", o.Workers)
	}
	if o := s.Overview(0, 0); len(o.Jobs) != 0 || o.States[jobs.Canceled] != 3 {
		t.Errorf("Overview(0, 0) = %+v, want counts only", o)
	}
}
