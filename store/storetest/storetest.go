package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// Options configure one store opened by the suite.
type Options struct {
	// Retention is the retention every channel of the store gets.
	Retention store.Retention
	// DedupWindow is how long an idempotency key is remembered. Zero means
	// the engine's default, which must be at least a minute.
	DedupWindow time.Duration
}

// Engine is how the suite opens the engine under test.
type Engine struct {
	// Open opens the engine with its data in dir and opts applied, failing
	// t if it cannot. dir is owned by the test. A second Open on the same
	// dir after Close must see the same data: that is how durability across
	// restarts is tested. The suite closes what Open returns.
	Open func(t testing.TB, dir string, opts Options) store.Store
}

// wakeBound is how long a Wait may take to notice an append, or any call to
// notice a cancellation. It is generous so that a loaded CI machine running
// the race detector does not flake, and still catches a missed wakeup.
const wakeBound = 2 * time.Second

// pollBound is how long the suite polls for time-based retention and dedup
// expiry to take effect beyond their configured durations.
const pollBound = 10 * time.Second

// Run runs every conformance case against e as parallel subtests.
func Run(t *testing.T, e Engine) {
	if e.Open == nil {
		t.Fatal("storetest: Engine.Open is nil")
	}
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Log", logCases},
		{"Errors", errorCases},
		{"Retention", retentionCases},
		{"Wait", waitCases},
		{"Idempotency", idempotencyCases},
		{"Conditional", conditionalCases},
		{"Durability", durabilityCases},
		{"Lifecycle", lifecycleCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, e)
				})
			}
		})
	}
}

type testCase struct {
	name string
	fn   func(t *testing.T, e Engine)
}

// open opens a store on a fresh directory and closes it when the test ends.
func open(t *testing.T, e Engine, opts Options) (store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	return reopen(t, e, dir, opts), dir
}

// reopen opens a store on dir and closes it when the test ends; a store the
// test already closed gives ErrClosed then, which is fine.
func reopen(t *testing.T, e Engine, dir string, opts Options) store.Store {
	t.Helper()
	s := e.Open(t, dir, opts)
	if s == nil {
		t.Fatal("Engine.Open returned nil")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustClose(t *testing.T, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustAppend(t testing.TB, s store.Store, channel string, data []byte, key string) store.AppendResult {
	t.Helper()
	r, err := s.Append(t.Context(), channel, data, store.AppendOptions{IdempotencyKey: key})
	if err != nil {
		t.Fatalf("Append(%q, %q, key %q): %v", channel, data, key, err)
	}
	if r.ID == "" || r.ID == store.Start {
		t.Fatalf("Append(%q) minted cursor %q; want neither empty nor Start", channel, r.ID)
	}
	return r
}

// appendN appends n messages "<prefix>-<i>" and returns their results.
func appendN(t testing.TB, s store.Store, channel, prefix string, n int) []store.AppendResult {
	t.Helper()
	rs := make([]store.AppendResult, n)
	for i := range rs {
		rs[i] = mustAppend(t, s, channel, fmt.Appendf(nil, "%s-%d", prefix, i), "")
	}
	return rs
}

func mustRead(t testing.TB, s store.Store, channel string, after store.Cursor, limit int) store.ReadResult {
	t.Helper()
	r, err := s.Read(t.Context(), channel, after, limit)
	if err != nil {
		t.Fatalf("Read(%q, after %q, limit %d): %v", channel, after, limit, err)
	}
	if len(r.Messages) > limit {
		t.Fatalf("Read(%q, after %q, limit %d) returned %d messages", channel, after, limit, len(r.Messages))
	}
	return r
}

func mustBounds(t testing.TB, s store.Store, channel string) store.Bounds {
	t.Helper()
	b, err := s.Bounds(t.Context(), channel)
	if err != nil {
		t.Fatalf("Bounds(%q): %v", channel, err)
	}
	return b
}

// readAll pages through channel after the cursor with the given page size
// until a read returns nothing, checking that pages chain and never report
// a gap.
func readAll(t testing.TB, s store.Store, channel string, after store.Cursor, page int) []store.Message {
	t.Helper()
	var all []store.Message
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatalf("readAll(%q): pages never end", channel)
		}
		r := mustRead(t, s, channel, after, page)
		if r.Gap {
			t.Fatalf("Read(%q, after %q): unexpected Gap", channel, after)
		}
		if len(r.Messages) == 0 {
			return all
		}
		if last := r.Messages[len(r.Messages)-1].ID; r.Next != last {
			t.Fatalf("Read(%q, after %q).Next = %q; want last ID %q", channel, after, r.Next, last)
		}
		all = append(all, r.Messages...)
		after = r.Next
	}
}

// ids returns the IDs of append results.
func ids(rs []store.AppendResult) []store.Cursor {
	out := make([]store.Cursor, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func messageIDs(ms []store.Message) []store.Cursor {
	out := make([]store.Cursor, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func equalCursors(a, b []store.Cursor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkMessages fails t unless got holds exactly the appended messages,
// in order, with the data each was appended with.
func checkMessages(t testing.TB, what string, got []store.Message, want []store.AppendResult, data [][]byte) {
	t.Helper()
	if !equalCursors(messageIDs(got), ids(want)) {
		t.Fatalf("%s: got IDs %q; want %q", what, messageIDs(got), ids(want))
	}
	for i, m := range got {
		if !bytes.Equal(m.Data, data[i]) {
			t.Fatalf("%s: message %d data = %.40q; want %.40q", what, i, m.Data, data[i])
		}
		if !m.Time.Equal(want[i].Time) {
			t.Fatalf("%s: message %d Time = %v; want the append's %v", what, i, m.Time, want[i].Time)
		}
	}
}

func equalMessages(a, b []store.Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !bytes.Equal(a[i].Data, b[i].Data) || !a[i].Time.Equal(b[i].Time) {
			return false
		}
	}
	return true
}

// eventually polls cond every 10ms until it returns true or d passes, then
// fails t with what cond last said.
func eventually(t testing.TB, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", d, why)
		}
		<-tick.C
	}
}

// async runs f in a goroutine and returns a channel that delivers its error.
func async(f func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return done
}

// within waits up to d for done and fails t if it does not deliver.
func within(t testing.TB, d time.Duration, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// stillBlocked fails t if done delivers within d: a bounded negative check
// that a call is blocked, used only where no positive signal exists.
func stillBlocked(t testing.TB, d time.Duration, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned early (err %v); want it blocked", what, err)
	case <-time.After(d):
	}
}

// waitCtx returns a context for one Wait call that ends well after
// wakeBound, so a Wait that returns because of it is caught as a missed
// wakeup rather than mistaken for one.
func waitCtx(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), 3*wakeBound)
}
