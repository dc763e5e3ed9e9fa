package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

var retentionCases = []testCase{
	{"MaxMessages", testMaxMessages},
	{"MaxMessagesSurvivesReopen", testMaxMessagesReopen},
	{"MaxAge", testMaxAge},
}

// waitEarliest polls until the channel's Earliest is want: engines may
// apply retention asynchronously.
func waitEarliest(t *testing.T, s store.Store, channel string, want store.Cursor, d time.Duration) {
	t.Helper()
	eventually(t, d, func() (bool, string) {
		b := mustBounds(t, s, channel)
		return b.Earliest == want, fmt.Sprintf("Bounds(%q) = %+v; want Earliest %q", channel, b, want)
	})
}

// checkPage fails t unless r holds exactly want, with the given gap.
func checkPage(t *testing.T, what string, r store.ReadResult, want []store.AppendResult, gap bool) {
	t.Helper()
	if !equalCursors(messageIDs(r.Messages), ids(want)) {
		t.Fatalf("%s: got %q; want %q", what, messageIDs(r.Messages), ids(want))
	}
	if r.Gap != gap {
		t.Fatalf("%s: Gap = %v; want %v", what, r.Gap, gap)
	}
	if len(want) > 0 && r.Next != want[len(want)-1].ID {
		t.Fatalf("%s: Next = %q; want %q", what, r.Next, want[len(want)-1].ID)
	}
}

func testMaxMessages(t *testing.T, e Engine) {
	const keep = 5
	s, _ := open(t, e, Options{Retention: store.Retention{MaxMessages: keep}})
	rs := appendN(t, s, "cap", "m", 12)
	kept := rs[len(rs)-keep:] // messages 7..11
	waitEarliest(t, s, "cap", kept[0].ID, pollBound)
	if b := mustBounds(t, s, "cap"); b.Latest != rs[11].ID {
		t.Fatalf("Latest = %q; want %q", b.Latest, rs[11].ID)
	}

	checkPage(t, "Read after Start", mustRead(t, s, "cap", store.Start, 100), kept, false)

	r := mustRead(t, s, "cap", rs[1].ID, 100)
	checkPage(t, "Read from behind retention", r, kept, true)
	if r.Earliest != kept[0].ID {
		t.Fatalf("Read from behind retention: Earliest = %q; want %q", r.Earliest, kept[0].ID)
	}

	// One message missed is a gap; none missed is not.
	checkPage(t, "Read missing one message", mustRead(t, s, "cap", rs[5].ID, 100), kept, true)
	checkPage(t, "Read after the last dropped message", mustRead(t, s, "cap", rs[6].ID, 100), kept, false)
	checkPage(t, "Read after a kept message", mustRead(t, s, "cap", rs[9].ID, 100), rs[10:], false)

	// A gap is reported on the page that skips, and pages after it chain.
	r = mustRead(t, s, "cap", rs[0].ID, 2)
	checkPage(t, "first page from behind retention", r, kept[:2], true)
	checkPage(t, "second page", mustRead(t, s, "cap", r.Next, 2), kept[2:4], false)
}

func testMaxMessagesReopen(t *testing.T, e Engine) {
	opts := Options{Retention: store.Retention{MaxMessages: 3}}
	s, dir := open(t, e, opts)
	rs := appendN(t, s, "cap", "m", 8)
	waitEarliest(t, s, "cap", rs[5].ID, pollBound)
	mustClose(t, s)

	s = reopen(t, e, dir, opts)
	if b := mustBounds(t, s, "cap"); b.Earliest != rs[5].ID || b.Latest != rs[7].ID {
		t.Fatalf("Bounds after reopen = %+v; want Earliest %q, Latest %q", b, rs[5].ID, rs[7].ID)
	}
	more := appendN(t, s, "cap", "n", 2)
	waitEarliest(t, s, "cap", rs[7].ID, pollBound)
	want := append([]store.AppendResult{rs[7]}, more...)
	checkPage(t, "Read after Start", mustRead(t, s, "cap", store.Start, 100), want, false)
	checkPage(t, "Read from behind", mustRead(t, s, "cap", rs[2].ID, 100), want, true)
}

func testMaxAge(t *testing.T, e Engine) {
	// Long enough that fresh messages outlive the checks on a loaded
	// machine, short enough to keep the suite quick.
	const maxAge = 2 * time.Second
	s, _ := open(t, e, Options{Retention: store.Retention{MaxAge: maxAge}})
	start := time.Now() // before any message was accepted
	old := appendN(t, s, "aged", "old", 3)

	// Every message expires: Earliest goes, Latest stays.
	waitEarliest(t, s, "aged", "", maxAge+pollBound)
	if elapsed := time.Since(start); elapsed < maxAge {
		t.Fatalf("messages expired after %v; want at least MaxAge %v", elapsed, maxAge)
	}
	if b := mustBounds(t, s, "aged"); b.Latest != old[2].ID {
		t.Fatalf("Latest after expiry = %q; want %q", b.Latest, old[2].ID)
	}

	// A reader behind learns of the gap once and moves on to Latest.
	r := mustRead(t, s, "aged", old[0].ID, 10)
	if !r.Gap || len(r.Messages) != 0 || r.Next != old[2].ID || r.Earliest != "" {
		t.Fatalf("Read from behind, all expired = %+v; want Gap, no messages, Next %q, Earliest \"\"", r, old[2].ID)
	}
	r = mustRead(t, s, "aged", store.Start, 10)
	if r.Gap || len(r.Messages) != 0 || r.Next != old[2].ID {
		t.Fatalf("Read after Start, all expired = %+v; want no gap, no messages, Next %q", r, old[2].ID)
	}
	r = mustRead(t, s, "aged", old[2].ID, 10)
	if r.Gap || len(r.Messages) != 0 || r.Next != old[2].ID {
		t.Fatalf("Read after Latest, all expired = %+v; want no gap, no messages, Next %q", r, old[2].ID)
	}

	// Fresh messages are readable; a reader behind the expired ones sees the
	// gap and then the fresh ones.
	fresh := appendN(t, s, "aged", "fresh", 2)
	r = mustRead(t, s, "aged", old[0].ID, 10)
	checkPage(t, "Read from behind, fresh messages", r, fresh, true)
	if r.Earliest != fresh[0].ID {
		t.Fatalf("Read from behind: Earliest = %q; want %q", r.Earliest, fresh[0].ID)
	}
	checkPage(t, "Read after Start, fresh messages", mustRead(t, s, "aged", store.Start, 10), fresh, false)
	checkPage(t, "Read after the last expired", mustRead(t, s, "aged", old[2].ID, 10), fresh, false)
}
