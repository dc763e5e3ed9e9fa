package session

import (
	"context"
	"testing"
	"time"
)

func TestQueueBoundAndPriority(t *testing.T) {
	q := newQueue(10)
	ctx := context.Background()
	s := &sub{}
	t0 := time.Unix(100, 0)
	if err := q.pushMsg(ctx, s, item{frame: []byte("mmmmmm"), channel: "a", cursor: "1", since: t0}); err != nil {
		t.Fatal(err)
	}
	// The lane holds 6 of 10 bytes: a 6-byte frame must wait.
	pushed := make(chan error, 1)
	go func() {
		pushed <- q.pushMsg(ctx, s, item{frame: []byte("nnnnnn"), channel: "a", cursor: "2", since: t0.Add(time.Second)})
	}()
	waitUntil(t, "the second push to wait", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.waiting) == 1
	})
	if got := q.oldest(); !got.Equal(t0) {
		t.Fatalf("oldest = %v, want %v", got, t0)
	}
	// Control frames have their own lane, and go first.
	if err := q.pushCtrl(ctx, item{frame: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"c", "mmmmmm"} {
		it, _, st := q.next(nil)
		if st != popItem || string(it.frame) != want {
			t.Fatalf("next = %q, %v; want %q", it.frame, st, want)
		}
		q.written()
	}
	if err := <-pushed; err != nil {
		t.Fatalf("waiting push: %v", err)
	}
	if got := q.oldest(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("oldest = %v, want the second message's clock", got)
	}
	q.dropMessages("a")
	if got := q.oldest(); !got.IsZero() {
		t.Fatalf("oldest after drop = %v, want none", got)
	}
	q.close(false)
	if _, _, st := q.next(nil); st != popClosed {
		t.Fatalf("next on a closed, empty queue = %v, want popClosed", st)
	}
	select {
	case <-q.stopped:
	default:
		t.Fatal("a closed, drained queue with no writer does not say stopped")
	}
	if err := q.pushCtrl(ctx, item{frame: []byte("x")}); err != errQueueClosed {
		t.Fatalf("push after close = %v, want errQueueClosed", err)
	}
}

// TestQueueOversizedFrame: a frame larger than the bound is queued alone.
func TestQueueOversizedFrame(t *testing.T) {
	q := newQueue(4)
	if err := q.pushMsg(context.Background(), &sub{}, item{frame: []byte("0123456789")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.pushMsg(ctx, &sub{}, item{frame: []byte("x")}); err == nil {
		t.Fatal("a second frame joined an over-full lane")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
