package natsstore

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// Store must be closed, and Close must leave nothing running, nor may the
// embedded NATS servers the tests start and shut down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
