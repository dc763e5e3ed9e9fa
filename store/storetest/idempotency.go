package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

var idempotencyCases = []testCase{
	{"SameKeySameChannel", testSameKeySameChannel},
	{"SameKeyOtherChannel", testSameKeyOtherChannel},
	{"EmptyKey", testEmptyKey},
	{"ConcurrentSameKey", testConcurrentSameKey},
	{"WindowExpires", testDedupWindowExpires},
	{"SurvivesReopen", testIdempotencySurvivesReopen},
}

// checkDuplicate fails t unless dup reports the original append.
func checkDuplicate(t *testing.T, what string, dup, orig store.AppendResult) {
	t.Helper()
	if !dup.Duplicate || dup.ID != orig.ID || !dup.Time.Equal(orig.Time) {
		t.Fatalf("%s = %+v; want Duplicate of %+v", what, dup, orig)
	}
}

func testSameKeySameChannel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	first := mustAppend(t, s, "idem", []byte("first"), "k1")
	if first.Duplicate {
		t.Fatal("first append with a key: Duplicate = true")
	}
	// The data of a duplicate is ignored: the key alone identifies it.
	checkDuplicate(t, "second append with the same key", mustAppend(t, s, "idem", []byte("other"), "k1"), first)
	checkDuplicate(t, "third append with the same key", mustAppend(t, s, "idem", []byte("first"), "k1"), first)

	second := mustAppend(t, s, "idem", []byte("second"), "k2")
	if second.Duplicate || second.ID == first.ID {
		t.Fatalf("append with another key = %+v; want a new message", second)
	}
	got := readAll(t, s, "idem", store.Start, 100)
	checkMessages(t, "channel", got, []store.AppendResult{first, second}, [][]byte{[]byte("first"), []byte("second")})
}

func testSameKeyOtherChannel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	a := mustAppend(t, s, "idem-a", []byte("a"), "shared")
	b := mustAppend(t, s, "idem-b", []byte("b"), "shared")
	if a.Duplicate || b.Duplicate {
		t.Fatalf("same key on two channels: %+v, %+v; want neither Duplicate", a, b)
	}
	for ch, want := range map[string]store.AppendResult{"idem-a": a, "idem-b": b} {
		if got := readAll(t, s, ch, store.Start, 100); !equalCursors(messageIDs(got), []store.Cursor{want.ID}) {
			t.Fatalf("channel %s holds %q; want [%q]", ch, messageIDs(got), want.ID)
		}
	}
}

func testEmptyKey(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	rs := []store.AppendResult{
		mustAppend(t, s, "nokey", []byte("same"), ""),
		mustAppend(t, s, "nokey", []byte("same"), ""),
	}
	if rs[0].Duplicate || rs[1].Duplicate || rs[0].ID == rs[1].ID {
		t.Fatalf("appends without a key = %+v; want two distinct messages", rs)
	}
}

// testConcurrentSameKey races appends that share a key, released at once so
// that engines with group commit see duplicates within one group.
func testConcurrentSameKey(t *testing.T, e Engine) {
	const keys, perKey = 4, 16
	s, _ := open(t, e, Options{})
	results := make([]store.AppendResult, keys*perKey)
	errs := make([]error, len(results))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.Append(t.Context(), "race", fmt.Appendf(nil, "try-%d", i),
				store.AppendOptions{IdempotencyKey: fmt.Sprint("key-", i%keys)})
		})
	}
	close(start)
	wg.Wait()
	originals := map[int]store.AppendResult{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("append %d: %v", i, errs[i])
		}
		if !r.Duplicate {
			if o, dup := originals[i%keys]; dup {
				t.Fatalf("key-%d appended twice: %+v and %+v", i%keys, o, r)
			}
			originals[i%keys] = r
		}
	}
	if len(originals) != keys {
		t.Fatalf("%d of %d keys appended a message; want every one exactly once", len(originals), keys)
	}
	for i, r := range results {
		if o := originals[i%keys]; r.ID != o.ID || !r.Time.Equal(o.Time) {
			t.Fatalf("append %d with key-%d = %+v; want ID and Time of %+v", i, i%keys, r, o)
		}
	}
	if got := readAll(t, s, "race", store.Start, 100); len(got) != keys {
		t.Fatalf("channel holds %d messages; want %d", len(got), keys)
	}
}

func testDedupWindowExpires(t *testing.T, e Engine) {
	const window = 300 * time.Millisecond
	s, _ := open(t, e, Options{DedupWindow: window})
	start := time.Now() // no later than the engine accepted the first append
	first := mustAppend(t, s, "window", []byte("1"), "k")

	var again store.AppendResult
	var againStart time.Time // no later than the engine accepted again
	eventually(t, window+pollBound, func() (bool, string) {
		againStart = time.Now()
		again = mustAppend(t, s, "window", []byte("2"), "k")
		if again.Duplicate {
			checkDuplicate(t, "append within the window", again, first)
		}
		return !again.Duplicate, "the key is still remembered"
	})
	// 5% slack for engines that keep time coarsely.
	if elapsed := time.Since(start); elapsed < window*95/100 {
		t.Fatalf("key forgotten after %v; want at least the window %v", elapsed, window)
	}
	if again.ID == first.ID {
		t.Fatalf("append after the window reused cursor %q", first.ID)
	}
	got := readAll(t, s, "window", store.Start, 100)
	checkMessages(t, "channel", got, []store.AppendResult{first, again}, [][]byte{[]byte("1"), []byte("2")})

	// The key is remembered again, now for the new message: a third append
	// is its duplicate unless the window has passed once more.
	third := mustAppend(t, s, "window", []byte("3"), "k")
	if third.Duplicate {
		checkDuplicate(t, "append right after re-use", third, again)
	} else if elapsed := time.Since(againStart); elapsed < window*95/100 {
		t.Fatalf("re-used key forgotten after %v; want at least the window %v", elapsed, window)
	}
}

func testIdempotencySurvivesReopen(t *testing.T, e Engine) {
	s, dir := open(t, e, Options{})
	first := mustAppend(t, s, "idem", []byte("before"), "persist")
	mustClose(t, s)

	s = reopen(t, e, dir, Options{})
	checkDuplicate(t, "append after reopen", mustAppend(t, s, "idem", []byte("after"), "persist"), first)
	if got := readAll(t, s, "idem", store.Start, 100); len(got) != 1 {
		t.Fatalf("channel holds %d messages after reopen; want 1", len(got))
	}
}
