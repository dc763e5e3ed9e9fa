package session

// latch is a one-time signal whose channel is made only if someone waits
// on it before it fires: most signals of an idle connection (its end, its
// writer's last word) fire once, at its end, with nobody waiting, and a
// channel made up front would cost each connection about 100 bytes of
// heap for nothing. A latch is guarded by its owner's mutex.
type latch struct {
	ch    chan struct{} // made by the first wait before fire; nil otherwise
	fired bool
}

// closedChan is what wait returns once the latch has fired.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// fire fires the latch, once; the owner's mutex is held.
func (l *latch) fire() {
	if l.fired {
		return
	}
	l.fired = true
	if l.ch != nil {
		close(l.ch)
	}
}

// wait returns a channel closed once the latch has fired; the owner's
// mutex is held (not while receiving from it).
func (l *latch) wait() <-chan struct{} {
	if l.fired {
		return closedChan
	}
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	return l.ch
}
