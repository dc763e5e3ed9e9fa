package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tether-run/tether/store"
)

var conditionalCases = []testCase{
	{"CreateOnlyOnce", testExpectStart},
	{"FollowsLatest", testExpectFollowsLatest},
	{"StaleRefused", testExpectStaleRefused},
	{"BadCursor", testExpectBadCursor},
	{"RaceOneWinner", testExpectRace},
	{"DuplicateBeforeConflict", testExpectDuplicateFirst},
	{"AfterTrim", testExpectAfterTrim},
	{"SurvivesReopen", testExpectSurvivesReopen},
}

// appendIf appends data to channel only if its latest is expect.
func appendIf(s store.Store, channel string, data []byte, expect store.Cursor) (store.AppendResult, error) {
	return s.Append(context.Background(), channel, data, store.AppendOptions{ExpectLatest: expect})
}

func mustAppendIf(t testing.TB, s store.Store, channel string, data []byte, expect store.Cursor) store.AppendResult {
	t.Helper()
	r, err := appendIf(s, channel, data, expect)
	if err != nil {
		t.Fatalf("Append(%s, ExpectLatest %q): %v", channel, expect, err)
	}
	return r
}

func checkConflict(t testing.TB, what string, r store.AppendResult, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("%s = %+v, %v; want ErrConflict", what, r, err)
	}
}

func testExpectStart(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	first := mustAppendIf(t, s, "cond", []byte("created"), store.Start)
	r, err := appendIf(s, "cond", []byte("again"), store.Start)
	checkConflict(t, "second create-only append", r, err)
	got := readAll(t, s, "cond", store.Start, 10)
	checkMessages(t, "channel", got, []store.AppendResult{first}, [][]byte{[]byte("created")})
}

func testExpectFollowsLatest(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	var rs []store.AppendResult
	var data [][]byte
	latest := store.Start
	for i := range 5 {
		d := fmt.Appendf(nil, "step-%d", i)
		r := mustAppendIf(t, s, "cond", d, latest)
		if b := mustBounds(t, s, "cond"); b.Latest != r.ID {
			t.Fatalf("after conditional append %d: Latest = %q; want %q", i, b.Latest, r.ID)
		}
		rs, data, latest = append(rs, r), append(data, d), r.ID
	}
	// An unconditional append moves Latest too; the next conditional
	// append must expect it.
	plain := mustAppend(t, s, "cond", []byte("plain"), "")
	r, err := appendIf(s, "cond", []byte("late"), latest)
	checkConflict(t, "append expecting the cursor before a plain append", r, err)
	last := mustAppendIf(t, s, "cond", []byte("last"), plain.ID)
	rs, data = append(rs, plain, last), append(data, []byte("plain"), []byte("last"))
	checkMessages(t, "channel", readAll(t, s, "cond", store.Start, 3), rs, data)
}

func testExpectStaleRefused(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	rs := appendN(t, s, "cond", "m", 3)
	for i, stale := range []store.Cursor{store.Start, rs[0].ID, rs[1].ID} {
		r, err := appendIf(s, "cond", []byte("stale"), stale)
		checkConflict(t, fmt.Sprintf("append expecting stale cursor %d", i), r, err)
	}
	// A cursor of another channel at another position is no better.
	other := appendN(t, s, "cond-other", "o", 5)
	r, err := appendIf(s, "cond", []byte("foreign"), other[4].ID)
	if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("append expecting another channel's cursor = %+v, %v; want ErrConflict or ErrBadCursor", r, err)
	}
	if b := mustBounds(t, s, "cond"); b.Latest != rs[2].ID {
		t.Fatalf("refused appends moved Latest to %q; want %q", b.Latest, rs[2].ID)
	}
	if got := readAll(t, s, "cond", store.Start, 10); len(got) != 3 {
		t.Fatalf("channel holds %d messages after refused appends; want 3", len(got))
	}
}

func testExpectBadCursor(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	mustAppend(t, s, "cond", []byte("x"), "")
	for _, c := range []store.Cursor{"not a cursor", "-1", "\x00"} {
		if r, err := appendIf(s, "cond", []byte("y"), c); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("append expecting %q = %+v, %v; want ErrBadCursor", c, r, err)
		}
	}
}

// testExpectRace races writers that all expect the same cursor, round after
// round, the way several nodes race to move a job: each round exactly one
// wins and the log is the chain of winners.
func testExpectRace(t *testing.T, e Engine) {
	const writers, rounds = 8, 20
	s, _ := open(t, e, Options{})
	latest := store.Start
	var winners []store.AppendResult
	var data [][]byte
	for round := range rounds {
		start := make(chan struct{})
		res := make([]store.AppendResult, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				res[w], errs[w] = appendIf(s, "race", fmt.Appendf(nil, "r%d-w%d", round, w), latest)
			})
		}
		close(start)
		wg.Wait()
		won := -1
		for w, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("round %d: writers %d and %d both appended expecting %q", round, won, w, latest)
			case err == nil:
				won = w
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d writer %d: %v; want nil or ErrConflict", round, w, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer appended expecting %q", round, latest)
		}
		winners, data = append(winners, res[won]), append(data, fmt.Appendf(nil, "r%d-w%d", round, won))
		latest = res[won].ID
	}
	checkMessages(t, "race channel", readAll(t, s, "race", store.Start, 7), winners, data)
}

func testExpectDuplicateFirst(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	ctx := context.Background()
	first, err := s.Append(ctx, "cond", []byte("once"), store.AppendOptions{IdempotencyKey: "k", ExpectLatest: store.Start})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "cond", []byte("after"), "")
	// The retry of the first append expects what the first expected; it is
	// answered as the duplicate it is, not as a conflict.
	again, err := s.Append(ctx, "cond", []byte("once"), store.AppendOptions{IdempotencyKey: "k", ExpectLatest: store.Start})
	if err != nil {
		t.Fatalf("retried conditional append: %v; want the duplicate", err)
	}
	checkDuplicate(t, "retried conditional append", again, first)
}

func testExpectAfterTrim(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{Retention: store.Retention{MaxMessages: 2}})
	rs := appendN(t, s, "cond", "m", 5)
	r, err := appendIf(s, "cond", []byte("stale"), rs[0].ID)
	checkConflict(t, "append expecting a trimmed cursor", r, err)
	next := mustAppendIf(t, s, "cond", []byte("next"), rs[4].ID)
	if b := mustBounds(t, s, "cond"); b.Latest != next.ID {
		t.Fatalf("Latest = %q; want %q", b.Latest, next.ID)
	}
}

func testExpectSurvivesReopen(t *testing.T, e Engine) {
	s, dir := open(t, e, Options{})
	rs := appendN(t, s, "cond", "m", 3)
	mustClose(t, s)
	s = reopen(t, e, dir, Options{})
	r, err := appendIf(s, "cond", []byte("stale"), rs[1].ID)
	checkConflict(t, "stale append after reopen", r, err)
	r, err = appendIf(s, "cond-new", []byte("x"), rs[2].ID)
	if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("append to an empty channel expecting a cursor = %+v, %v; want ErrConflict or ErrBadCursor", r, err)
	}
	mustAppendIf(t, s, "cond", []byte("next"), rs[2].ID)
}
