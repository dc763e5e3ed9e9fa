package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

var waitCases = []testCase{
	{"ReturnsAtOnce", testWaitReturnsAtOnce},
	{"BlocksThenWakes", testWaitBlocksThenWakes},
	{"NewChannel", testWaitNewChannel},
	{"OtherChannelDoesNotWake", testWaitOtherChannel},
	{"Cancel", testWaitCancel},
	{"Deadline", testWaitDeadline},
	{"ManyWaiters", testManyWaiters},
	{"CloseWakes", testCloseWakesWaiters},
}

// blockedFor is how long a negative check watches a Wait that must block.
// Short: it only needs to catch a Wait that returns at once.
const blockedFor = 100 * time.Millisecond

// startWait starts Wait in a goroutine with a context that outlives
// wakeBound.
func startWait(t *testing.T, s store.Store, channel string, after store.Cursor) <-chan error {
	ctx, cancel := waitCtx(t)
	return async(func() error {
		defer cancel()
		return s.Wait(ctx, channel, after)
	})
}

func testWaitReturnsAtOnce(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	rs := appendN(t, s, "w", "m", 2)
	for _, after := range []store.Cursor{store.Start, rs[0].ID} {
		if err := within(t, wakeBound, "Wait after "+string(after), startWait(t, s, "w", after)); err != nil {
			t.Fatalf("Wait after %q with a message after it: %v", after, err)
		}
	}
}

func testWaitBlocksThenWakes(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	rs := appendN(t, s, "w", "m", 2)
	done := startWait(t, s, "w", rs[1].ID)
	stillBlocked(t, blockedFor, "Wait after Latest", done)
	next := mustAppend(t, s, "w", []byte("wake"), "")
	if err := within(t, wakeBound, "Wait after an append", done); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	r := mustRead(t, s, "w", rs[1].ID, 10)
	if len(r.Messages) != 1 || r.Messages[0].ID != next.ID {
		t.Fatalf("Read after waking = %q; want [%q]", messageIDs(r.Messages), next.ID)
	}
}

func testWaitNewChannel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	done := startWait(t, s, "fresh", store.Start)
	stillBlocked(t, blockedFor, "Wait on a channel with no messages", done)
	mustAppend(t, s, "fresh", []byte("first"), "")
	if err := within(t, wakeBound, "Wait for the first message", done); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func testWaitOtherChannel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	done := startWait(t, s, "quiet", store.Start)
	appendN(t, s, "busy", "m", 3)
	appendN(t, s, "quiet2", "m", 1)
	stillBlocked(t, blockedFor, "Wait on a channel nobody appended to", done)
	mustAppend(t, s, "quiet", []byte("now"), "")
	if err := within(t, wakeBound, "Wait", done); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

var errTestCause = errors.New("storetest: cancelled on purpose")

func testWaitCancel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	latest := appendN(t, s, "w", "m", 1)[0].ID
	ctx, cancel := context.WithCancelCause(t.Context())
	done := async(func() error { return s.Wait(ctx, "w", latest) })
	stillBlocked(t, blockedFor, "Wait after Latest", done)
	cancel(errTestCause)
	if err := within(t, wakeBound, "cancelled Wait", done); !errors.Is(err, errTestCause) {
		t.Fatalf("cancelled Wait error = %v; want context.Cause(ctx) %v", err, errTestCause)
	}
	// The store is still usable and a new waiter works.
	done = startWait(t, s, "w", latest)
	mustAppend(t, s, "w", []byte("after cancel"), "")
	if err := within(t, wakeBound, "Wait after a cancelled one", done); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func testWaitDeadline(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := within(t, wakeBound, "Wait with a deadline", async(func() error {
		return s.Wait(ctx, "w", store.Start)
	}))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its deadline error = %v; want context.DeadlineExceeded", err)
	}
}

func testManyWaiters(t *testing.T, e Engine) {
	const waiters = 200
	s, _ := open(t, e, Options{})
	latest := appendN(t, s, "crowd", "m", 1)[0].ID
	ctx, cancel := waitCtx(t)
	defer cancel()

	var started, finished sync.WaitGroup
	errs := make(chan error, waiters)
	started.Add(waiters)
	finished.Add(waiters)
	for range waiters {
		go func() {
			defer finished.Done()
			started.Done()
			errs <- s.Wait(ctx, "crowd", latest)
		}()
	}
	started.Wait()
	other := startWait(t, s, "elsewhere", store.Start)
	mustAppend(t, s, "crowd", []byte("one append wakes all"), "")

	deadline := time.After(wakeBound)
	for i := range waiters {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("waiter %d: %v", i, err)
			}
		case <-deadline:
			t.Fatalf("%d of %d waiters woke within %v", i, waiters, wakeBound)
		}
	}
	finished.Wait()
	stillBlocked(t, blockedFor, "Wait on another channel", other)
}

func testCloseWakesWaiters(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	done := startWait(t, s, "w", store.Start)
	stillBlocked(t, blockedFor, "Wait on an empty channel", done)
	mustClose(t, s)
	if err := within(t, wakeBound, "Wait across Close", done); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Wait across Close error = %v; want ErrClosed", err)
	}
}
