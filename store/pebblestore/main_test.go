package pebblestore

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// Store must be closed, and Close must leave nothing running, Pebble's own
// goroutines included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
