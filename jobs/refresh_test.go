package jobs

import (
	"context"
	"testing"

	"github.com/tether-run/tether/store/pebblestore"
)

// A final job's entry keeps its summary when reading it again fails (here
// a context that ended): it used to be cleared before the read, leaving
// the job without a state until the next read succeeded.
func TestRefreshKeepsSummaryOnError(t *testing.T) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(Config{}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	j, _, err := s.Create(ctx, Spec{Type: "t"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, j.ID, ""); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	e := s.entries[j.ID]
	s.mu.Unlock()
	e.mu.Lock()
	slim := e.slim
	e.mu.Unlock()
	if !slim {
		t.Fatal("a canceled job's entry is not a summary")
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(ended, j.ID); err == nil {
		t.Fatal("Get with an ended context succeeded; the test needs the read to fail")
	}
	e.mu.Lock()
	got := e.job
	e.mu.Unlock()
	if got.State != Canceled || got.ID != j.ID {
		t.Fatalf("after a failed read the entry holds %+v; want the canceled job's summary", got)
	}
	if full, err := s.Get(ctx, j.ID); err != nil || full.State != Canceled {
		t.Fatalf("Get: %+v, %v", full, err)
	}
}
