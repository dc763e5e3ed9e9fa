package pebblestore

import (
	"testing"

	"github.com/tether-run/tether/jobs/jobstest"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Engine{
		Open: func(t testing.TB, dir string, opts storetest.Options) store.Store {
			s, err := Open(Config{Dir: dir, Retention: opts.Retention, DedupWindow: opts.DedupWindow})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

// TestJobs runs package jobs on this engine: claims, leases, fencing and
// cancellation are conditional appends.
func TestJobs(t *testing.T) {
	jobstest.RunConformance(t, func(t testing.TB, dir string) store.Store {
		s, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
