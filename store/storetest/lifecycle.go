package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/tether-run/tether/store"
)

var lifecycleCases = []testCase{
	{"ClosedStore", testClosedStore},
	{"CancelledAppend", testCancelledAppend},
}

func testClosedStore(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	latest := appendN(t, s, "c", "m", 1)[0].ID
	mustClose(t, s)

	ctx := t.Context()
	if _, err := s.Append(ctx, "c", []byte("late"), store.AppendOptions{}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close error = %v; want ErrClosed", err)
	}
	if _, err := s.Read(ctx, "c", store.Start, 10); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Read after Close error = %v; want ErrClosed", err)
	}
	if _, err := s.Bounds(ctx, "c"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Bounds after Close error = %v; want ErrClosed", err)
	}
	for _, after := range []store.Cursor{store.Start, latest} {
		err := within(t, wakeBound, "Wait after Close", async(func() error { return s.Wait(ctx, "c", after) }))
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("Wait(after %q) after Close error = %v; want ErrClosed", after, err)
		}
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close error = %v; want ErrClosed", err)
	}
}

// testCancelledAppend pins down that an Append whose ctx is done before the
// call appends nothing and returns context.Cause(ctx).
func testCancelledAppend(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errTestCause)
	for _, key := range []string{"", "k"} {
		_, err := s.Append(ctx, "cancelled", []byte("never"), store.AppendOptions{IdempotencyKey: key})
		if !errors.Is(err, errTestCause) {
			t.Fatalf("Append with a cancelled ctx (key %q) error = %v; want context.Cause(ctx)", key, err)
		}
	}
	if b := mustBounds(t, s, "cancelled"); b.Latest != store.Start {
		t.Fatalf("Bounds after a cancelled Append = %+v; want nothing appended", b)
	}
	// The key was not consumed by the cancelled append.
	if r := mustAppend(t, s, "cancelled", []byte("real"), "k"); r.Duplicate {
		t.Fatalf("append after a cancelled one with the same key = %+v; want not Duplicate", r)
	}
}
