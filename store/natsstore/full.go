package natsstore

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-run/tether/store"
)

// JetStream error codes that mean the stream's storage is full
// (nats-server's jetstream_errors_generated.go).
const (
	codeAccountResourcesExceeded jetstream.ErrorCode = 10002 // "resource limits exceeded for account"
	codeInsufficientResources    jetstream.ErrorCode = 10023 // "insufficient resources": the server's max_file_store
	codeMemoryResourcesExceeded  jetstream.ErrorCode = 10028 // "insufficient memory resources available"
	codeStorageResourcesExceeded jetstream.ErrorCode = 10047 // "insufficient storage resources available"
	codeStreamStoreFailed        jetstream.ErrorCode = 10077 // "{err}": the stream's store refused the message
)

// isNoSpace reports whether the stream refused a message because its
// storage is full: the server's or the account's JetStream limits, or a
// stream limit with the discard-new policy ("maximum bytes exceeded").
// Such a refusal stores nothing, and trying again at once would only be
// refused again, so the append answers store.ErrNoSpace.
func isNoSpace(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case codeAccountResourcesExceeded, codeInsufficientResources,
		codeMemoryResourcesExceeded, codeStorageResourcesExceeded:
		return true
	case codeStreamStoreFailed:
		d := apiErr.Description
		return strings.Contains(d, "maximum bytes exceeded") ||
			strings.Contains(d, "maximum messages exceeded") ||
			strings.Contains(d, "no space left")
	}
	return false
}

// degradedFor is how long Health stays degraded after the stream refused
// an append for want of space, unless an append succeeds first. Nothing
// else tells the store that space is back: its appends simply succeed
// again.
const degradedFor = 10 * time.Second

// fullness remembers the stream's last refusal for want of space, for
// Health.
type fullness struct {
	mu      sync.Mutex
	refused time.Time // guarded by mu; zero once an append succeeded since
	reason  string    // guarded by mu
}

func (f *fullness) noSpace(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused, f.reason = time.Now(), err.Error()
}

func (f *fullness) appended() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused = time.Time{}
}

// Health implements store.Healther: degraded and read-only for 10s after
// the stream refused an append for want of space, until an append
// succeeds.
func (s *Store) Health() store.Health {
	f := &s.full
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused.IsZero() || time.Since(f.refused) > degradedFor {
		return store.Health{}
	}
	return store.Health{Degraded: true, ReadOnly: true, Reason: "JetStream storage full: " + f.reason + "; appends refused"}
}

var _ store.Healther = (*Store)(nil)
