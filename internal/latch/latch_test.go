package latch

import "testing"

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestLatch(t *testing.T) {
	var l Latch
	if l.Fired() {
		t.Fatal("a zero Latch says fired")
	}
	w := l.Wait()
	if isClosed(w) {
		t.Fatal("Wait's channel is closed before Fire")
	}
	if l.ch == nil {
		t.Fatal("Wait before Fire made no channel")
	}
	l.Fire()
	l.Fire() // idempotent: no double close
	if !l.Fired() || !isClosed(w) {
		t.Fatal("Fire did not close the channel a waiter holds")
	}
	if !isClosed(l.Wait()) {
		t.Fatal("Wait after Fire returned an open channel")
	}
}

func TestLatchNoWaiterNoChannel(t *testing.T) {
	var l Latch
	l.Fire()
	if l.ch != nil {
		t.Fatal("Fire with no waiter made a channel")
	}
	if !isClosed(l.Wait()) {
		t.Fatal("Wait after Fire returned an open channel")
	}
	if n := testing.AllocsPerRun(100, func() {
		var l Latch
		l.Fire()
		<-l.Wait()
	}); n != 0 {
		t.Fatalf("a latch fired before anyone waited allocates %.0f times, want 0", n)
	}
}
