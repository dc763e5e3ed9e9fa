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
	case <-q.stoppedC():
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

// TestQueueWriterOnDemand: once enabled, a push that finds no writer
// starts one, and only one; the writer's turn ends when next finds the
// queue empty, and the next push starts another; a closed, drained queue
// with no writer says stopped.
func TestQueueWriterOnDemand(t *testing.T) {
	q := newQueue(100)
	starts := 0
	q.forceCtrl(item{frame: []byte("early")}) // before enable: no writer
	if starts != 0 {
		t.Fatal("a writer started before enable")
	}
	q.enable(func() { starts++ })
	if starts != 1 {
		t.Fatalf("enable with a frame queued started %d writers, want 1", starts)
	}
	q.forceCtrl(item{frame: []byte("more")})
	if starts != 1 {
		t.Fatalf("a push while the writer runs started another: %d starts", starts)
	}
	for _, want := range []string{"early", "more"} {
		if it, _, st := q.next(nil); st != popItem || string(it.frame) != want {
			t.Fatalf("next = %q, %v; want %q", it.frame, st, want)
		}
	}
	flushed := false
	if _, _, st := q.next(func() { flushed = true }); st != popEmpty || !flushed {
		t.Fatalf("next on an empty queue = %v (idle called: %v), want popEmpty after idle", st, flushed)
	}
	q.tryCtrl(item{frame: []byte("again")})
	if starts != 2 {
		t.Fatalf("a push after the writer's turn ended: %d starts, want 2", starts)
	}
	q.close(false)
	select {
	case <-q.stoppedC():
		t.Fatal("stopped with a frame still queued")
	default:
	}
	if it, _, st := q.next(nil); st != popItem || string(it.frame) != "again" {
		t.Fatalf("next = %q, %v; want again", it.frame, st)
	}
	if _, _, st := q.next(nil); st != popClosed {
		t.Fatalf("next on a closed, drained queue = %v, want popClosed", st)
	}
	select {
	case <-q.stoppedC():
	default:
		t.Fatal("a closed, drained queue whose writer exited does not say stopped")
	}
	if q.forceCtrl(item{frame: []byte("late")}) || starts != 2 {
		t.Fatalf("a push after close was queued or started a writer (%d starts)", starts)
	}
}
