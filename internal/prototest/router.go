package prototest

import (
	"sync"
	"testing"
	"time"
)

// Router lets many goroutines have requests in flight on one Client: it
// takes over the Client's Frames and hands each answer to the goroutine
// whose request carries its id.
type Router struct {
	t testing.TB
	c *Client

	mu      sync.Mutex
	waiting map[string]chan Frame // guarded by mu; by request id
}

// NewRouter starts routing c's frames; frames for which skip reports true
// are dropped, and any other frame must answer a request in flight. Its
// goroutine ends when c's read side does.
func NewRouter(t testing.TB, c *Client, skip func(Frame) bool) *Router {
	r := &Router{t: t, c: c, waiting: map[string]chan Frame{}}
	go func() {
		for f := range c.Frames {
			if skip(f) {
				continue
			}
			r.mu.Lock()
			ch := r.waiting[f.Str("id")]
			delete(r.waiting, f.Str("id"))
			r.mu.Unlock()
			if ch == nil {
				t.Errorf("reply %v matches no request in flight", f)
				continue
			}
			ch <- f
		}
	}()
	return r
}

// Do sends req, whose "id" must be a string unique among the requests in
// flight, and returns the frame that answers it. If none does within 10s
// it reports an error and returns false.
func (r *Router) Do(req map[string]any) (Frame, bool) {
	id := req["id"].(string)
	ch := make(chan Frame, 1)
	r.mu.Lock()
	r.waiting[id] = ch
	r.mu.Unlock()
	r.c.Send(req)
	select {
	case f := <-ch:
		return f, true
	case <-time.After(10 * time.Second):
		r.t.Errorf("no reply to %s", id)
		return nil, false
	}
}
