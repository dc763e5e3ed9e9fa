package client

import "sync"

// DefaultDeliveryQueue is Config.DeliveryQueue's default.
const DefaultDeliveryQueue = 4096

// dispatcher calls handlers, and the Client's callbacks, one at a time on
// its own goroutine, in the order they were queued. Its queue is bounded
// for events coming off the network (waitRoom blocks the reader, which
// holds the server back: it ends the connection as a slow consumer at
// worst, and the subscription resumes by cursor) but not for replays of
// the unhandled-event buffer, which is bounded itself.
type dispatcher struct {
	max  int
	done chan struct{} // closed when run returns

	mu     sync.Mutex
	cond   *sync.Cond // signalled on push, pop and close; uses mu
	q      []func()   // guarded by mu
	closed bool       // guarded by mu
}

func newDispatcher(max int) *dispatcher {
	d := &dispatcher{max: max, done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	go d.run()
	return d
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.q) == 0 && !d.closed {
			d.cond.Wait()
		}
		if d.closed {
			d.mu.Unlock()
			return
		}
		f := d.q[0]
		d.q[0] = nil
		d.q = d.q[1:]
		d.cond.Broadcast()
		d.mu.Unlock()
		f()
	}
}

// push queues f, past the bound if need be.
func (d *dispatcher) push(f func()) {
	d.mu.Lock()
	if !d.closed {
		d.q = append(d.q, f)
		d.cond.Broadcast()
	}
	d.mu.Unlock()
}

// waitRoom waits until the queue is under its bound, or closed.
func (d *dispatcher) waitRoom() {
	d.mu.Lock()
	for len(d.q) >= d.max && !d.closed {
		d.cond.Wait()
	}
	d.mu.Unlock()
}

// close stops delivery: what is queued is dropped. It does not wait (a
// handler may be the caller); <-d.done does.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.q = nil
	d.cond.Broadcast()
	d.mu.Unlock()
}
