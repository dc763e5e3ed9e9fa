package jobs_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tether-run/tether/jobs/jobstest"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openPebble(t testing.TB, dir string) store.Store {
	s, err := pebblestore.Open(pebblestore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJobs runs the engine-neutral job cases (claims, leases, fencing,
// cancellation) on the Pebble engine; every engine's tests run them too
// (jobstest.RunConformance).
func TestJobs(t *testing.T) {
	jobstest.RunConformance(t, openPebble)
}
