// Package latch is a one-time signal whose channel is made only if
// someone waits on it before it fires. Most signals of an idle connection
// (its end, its writer's last word, its registry entry's release) fire
// once, at its end, with nobody waiting: a channel made up front would
// cost each connection about 100 bytes of heap for nothing.
//
// A Latch has no lock of its own: its owner guards it with one of its
// mutexes, held across every call. The zero value is an unfired latch.
package latch

// Latch is a one-time signal; see the package doc.
type Latch struct {
	ch    chan struct{} // made by the first Wait before Fire; nil otherwise
	fired bool
}

// closed is what Wait returns once the latch has fired.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Fire fires the latch; later calls do nothing.
func (l *Latch) Fire() {
	if l.fired {
		return
	}
	l.fired = true
	if l.ch != nil {
		close(l.ch)
	}
}

// Fired reports whether Fire was called.
func (l *Latch) Fired() bool { return l.fired }

// Wait returns a channel that is closed once the latch has fired. The
// owner's lock is held while calling Wait, not while receiving.
func (l *Latch) Wait() <-chan struct{} {
	if l.fired {
		return closed
	}
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	return l.ch
}
