package natsstore

import (
	"testing"

	"github.com/tether-run/tether/jobs/jobstest"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Engine{
		Open: func(t testing.TB, dir string, opts storetest.Options) store.Store {
			return openServerStore(t, dir, Config{Retention: opts.Retention, DedupWindow: opts.DedupWindow})
		},
	})
}

// TestJobs runs package jobs on this engine: claims, leases, fencing and
// cancellation are conditional appends.
func TestJobs(t *testing.T) {
	jobstest.RunConformance(t, func(t testing.TB, dir string) store.Store {
		return openServerStore(t, dir, Config{})
	})
}
