//go:build !linux

package conn

import "sync"

// readyState: without epoll, each Arm starts a goroutine that calls fn at
// once, and fn's reader waits in its read as a blocking reader does.
type readyState struct {
	mu      sync.Mutex
	stopped bool
}

func (r *Ready) init() error { return nil }

// Arm asks for one call of fn; here it comes at once, on a new goroutine.
func (r *Ready) Arm() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrReadyStopped
	}
	go r.fn()
	return nil
}

// Stop ends the watch: no call of fn starts after it returns.
func (r *Ready) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}
