package jobs_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/store/storetest"
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
// cancellation) on the Pebble engine; every engine runs them through
// storetest.Run.
func TestJobs(t *testing.T) {
	storetest.RunJobs(t, storetest.Engine{Open: func(t testing.TB, dir string, _ storetest.Options) store.Store {
		return openPebble(t, dir)
	}})
}
