package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/tether-run/tether/store"
)

var errorCases = []testCase{
	{"BadCursor", testBadCursor},
	{"CursorFromAnotherStore", testCursorFromAnotherStore},
	{"CursorFromLongerChannel", testCursorFromLongerChannel},
	{"BadChannel", testBadChannel},
	{"BadLimit", testBadLimit},
}

// badCursors are shapes no engine may mint. The suite reserves them so that
// every engine rejects them the same way.
var badCursors = []store.Cursor{
	"",
	"garbage",
	"-1",
	"+1",
	" 1",
	"1 ",
	"1.5",
	"0x10",
	"1e3",
	"\x00",
	"1\x00",
	"½",
	store.Cursor(strings.Repeat("9", 4096)),
	store.Cursor(strings.Repeat("z", 4096)),
}

func testBadCursor(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	appendN(t, s, "full", "m", 3)
	for _, ch := range []string{"full", "empty"} {
		for _, c := range badCursors {
			if _, err := s.Read(t.Context(), ch, c, 10); !errors.Is(err, store.ErrBadCursor) {
				t.Errorf("Read(%q, after %.20q) error = %v; want ErrBadCursor", ch, c, err)
			}
			ctx, cancel := waitCtx(t)
			err := s.Wait(ctx, ch, c)
			cancel()
			if !errors.Is(err, store.ErrBadCursor) {
				t.Errorf("Wait(%q, after %.20q) error = %v; want ErrBadCursor", ch, c, err)
			}
		}
	}
}

// checkAhead fails t unless err says the cursor is ahead or foreign.
func checkAhead(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrCursorAhead) && !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("%s error = %v; want ErrCursorAhead (or ErrBadCursor from an engine that recognises foreign cursors)", what, err)
	}
}

// testCursorFromAnotherStore models a client that read from a server whose
// history this server does not have: the cursor is genuine but lies beyond
// anything this store has for the channel.
func testCursorFromAnotherStore(t *testing.T, e Engine) {
	a, _ := open(t, e, Options{})
	b, _ := open(t, e, Options{})
	ahead := appendN(t, a, "ch", "a", 5)[4].ID
	own := appendN(t, b, "ch", "b", 2)

	_, err := b.Read(t.Context(), "ch", ahead, 10)
	checkAhead(t, "Read with a cursor from a longer log", err)
	ctx, cancel := waitCtx(t)
	defer cancel()
	checkAhead(t, "Wait with a cursor from a longer log",
		within(t, wakeBound, "Wait with a cursor from a longer log", async(func() error {
			return b.Wait(ctx, "ch", ahead)
		})))

	// The store's own cursors are unaffected.
	r := mustRead(t, b, "ch", own[0].ID, 10)
	if !equalCursors(messageIDs(r.Messages), ids(own[1:])) {
		t.Fatalf("Read after own cursor = %q; want %q", messageIDs(r.Messages), ids(own[1:]))
	}
}

// testCursorFromLongerChannel uses a cursor minted for one channel on
// another channel of the same store that has fewer messages.
func testCursorFromLongerChannel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	ahead := appendN(t, s, "long", "l", 6)[5].ID
	appendN(t, s, "short", "s", 2)
	for _, ch := range []string{"short", "untouched"} {
		_, err := s.Read(t.Context(), ch, ahead, 10)
		checkAhead(t, "Read("+ch+") with a cursor from a longer channel", err)
		ctx, cancel := waitCtx(t)
		checkAhead(t, "Wait("+ch+") with a cursor from a longer channel",
			within(t, wakeBound, "Wait with a cursor from a longer channel", async(func() error {
				return s.Wait(ctx, ch, ahead)
			})))
		cancel()
	}
}

var badChannels = []string{
	"", " ", "a b", "-lead", ".lead", "_lead", ":lead", "a/b", "a\x00b", "é", "a*", "a>",
	strings.Repeat("x", store.MaxChannelLen+1),
}

func testBadChannel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	ctx := t.Context()
	for _, ch := range badChannels {
		if store.ValidChannel(ch) {
			t.Fatalf("suite bug: %q is valid", ch)
		}
		if _, err := s.Append(ctx, ch, []byte("x"), store.AppendOptions{}); !errors.Is(err, store.ErrBadChannel) {
			t.Errorf("Append(%.20q) error = %v; want ErrBadChannel", ch, err)
		}
		if _, err := s.Read(ctx, ch, store.Start, 10); !errors.Is(err, store.ErrBadChannel) {
			t.Errorf("Read(%.20q) error = %v; want ErrBadChannel", ch, err)
		}
		if _, err := s.Bounds(ctx, ch); !errors.Is(err, store.ErrBadChannel) {
			t.Errorf("Bounds(%.20q) error = %v; want ErrBadChannel", ch, err)
		}
		wctx, cancel := waitCtx(t)
		if err := s.Wait(wctx, ch, store.Start); !errors.Is(err, store.ErrBadChannel) {
			t.Errorf("Wait(%.20q) error = %v; want ErrBadChannel", ch, err)
		}
		cancel()
	}
	// The longest valid name works.
	long := strings.Repeat("x", store.MaxChannelLen)
	mustAppend(t, s, long, []byte("ok"), "")
	if n := len(mustRead(t, s, long, store.Start, 10).Messages); n != 1 {
		t.Fatalf("channel of MaxChannelLen holds %d messages; want 1", n)
	}
}

func testBadLimit(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	appendN(t, s, "limit", "m", 2)
	for _, limit := range []int{0, -1} {
		if r, err := s.Read(t.Context(), "limit", store.Start, limit); err == nil {
			t.Errorf("Read with limit %d = %+v, nil error; want an error", limit, r)
		}
	}
}
