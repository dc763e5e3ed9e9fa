package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

var logCases = []testCase{
	{"AppendThenRead", testAppendThenRead},
	{"PagesChain", testPagesChain},
	{"ReadAfterEachCursor", testReadAfterEachCursor},
	{"EmptyChannel", testEmptyChannel},
	{"Bounds", testBounds},
	{"ReadDoesNotConsume", testReadDoesNotConsume},
	{"ChannelsIsolated", testChannelsIsolated},
}

// payloads are data that an engine must store byte for byte: empty, binary
// with every byte value, text, and one large enough to span pages or blocks.
func payloads() [][]byte {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16)
	return [][]byte{
		{}, every, []byte("hello"), {0}, []byte("héllo, wörld"), large, []byte("\x00\xff\x00"),
	}
}

func testAppendThenRead(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	data := payloads()
	rs := make([]store.AppendResult, len(data))
	seen := map[store.Cursor]bool{}
	for i, d := range data {
		before := time.Now()
		rs[i] = mustAppend(t, s, "log", d, "")
		after := time.Now()
		if seen[rs[i].ID] {
			t.Fatalf("append %d minted cursor %q twice", i, rs[i].ID)
		}
		seen[rs[i].ID] = true
		if rs[i].Duplicate {
			t.Fatalf("append %d: Duplicate = true without an idempotency key", i)
		}
		// The engine's clock may be another process's; allow it a second.
		if rs[i].Time.Before(before.Add(-time.Second)) || rs[i].Time.After(after.Add(time.Second)) {
			t.Fatalf("append %d: Time = %v; want between %v and %v", i, rs[i].Time, before, after)
		}
	}
	r := mustRead(t, s, "log", store.Start, 100)
	checkMessages(t, "Read after Start", r.Messages, rs, data)
	if r.Gap {
		t.Fatal("Read after Start: Gap = true")
	}
	if r.Next != rs[len(rs)-1].ID {
		t.Fatalf("Read after Start: Next = %q; want last ID %q", r.Next, rs[len(rs)-1].ID)
	}
}

func testPagesChain(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	rs := appendN(t, s, "pages", "m", 25)
	for _, limit := range []int{1, 7, 25, 1000} {
		var got []store.Message
		after := store.Start
		for pages := 0; ; pages++ {
			r := mustRead(t, s, "pages", after, limit)
			if want := min(limit, len(rs)-len(got)); len(r.Messages) != want {
				t.Fatalf("limit %d page %d: %d messages; want %d", limit, pages, len(r.Messages), want)
			}
			if r.Gap {
				t.Fatalf("limit %d page %d: Gap = true", limit, pages)
			}
			if len(r.Messages) == 0 {
				if r.Next != rs[len(rs)-1].ID {
					t.Fatalf("limit %d: empty page Next = %q; want Latest %q", limit, r.Next, rs[len(rs)-1].ID)
				}
				break
			}
			if r.Next != r.Messages[len(r.Messages)-1].ID {
				t.Fatalf("limit %d page %d: Next = %q; want last ID", limit, pages, r.Next)
			}
			got = append(got, r.Messages...)
			after = r.Next
		}
		if !equalCursors(messageIDs(got), ids(rs)) {
			t.Fatalf("limit %d: pages hold %q; want %q", limit, messageIDs(got), ids(rs))
		}
	}
}

func testReadAfterEachCursor(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	rs := appendN(t, s, "each", "m", 12)
	for i, a := range rs {
		r := mustRead(t, s, "each", a.ID, 100)
		if !equalCursors(messageIDs(r.Messages), ids(rs[i+1:])) {
			t.Fatalf("Read after message %d: got %q; want %q", i, messageIDs(r.Messages), ids(rs[i+1:]))
		}
		if r.Gap {
			t.Fatalf("Read after message %d: Gap = true", i)
		}
		if r.Next != rs[len(rs)-1].ID {
			t.Fatalf("Read after message %d: Next = %q; want %q", i, r.Next, rs[len(rs)-1].ID)
		}
	}
}

func testEmptyChannel(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	appendN(t, s, "other", "m", 3)
	r := mustRead(t, s, "never-written", store.Start, 10)
	if len(r.Messages) != 0 || r.Gap || r.Next != store.Start {
		t.Fatalf("Read of an empty channel = %+v; want no messages, no gap, Next = Start", r)
	}
	b := mustBounds(t, s, "never-written")
	if b.Latest != store.Start || b.Earliest != "" {
		t.Fatalf("Bounds of an empty channel = %+v; want Latest = Start, Earliest = \"\"", b)
	}
}

func testBounds(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	for n := 1; n <= 3; n++ {
		rs := appendN(t, s, "bounds", "m", 1)
		b := mustBounds(t, s, "bounds")
		if b.Latest != rs[0].ID {
			t.Fatalf("after %d appends Latest = %q; want %q", n, b.Latest, rs[0].ID)
		}
		first := mustRead(t, s, "bounds", store.Start, 1).Messages[0].ID
		if b.Earliest != first {
			t.Fatalf("after %d appends Earliest = %q; want %q", n, b.Earliest, first)
		}
	}
	r := mustRead(t, s, "bounds", mustBounds(t, s, "bounds").Latest, 10)
	if len(r.Messages) != 0 {
		t.Fatalf("Read after Latest returned %d messages; want none", len(r.Messages))
	}
}

func testReadDoesNotConsume(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	rs := appendN(t, s, "consume", "m", 5)
	for _, after := range []store.Cursor{store.Start, rs[1].ID} {
		a := mustRead(t, s, "consume", after, 3)
		b := mustRead(t, s, "consume", after, 3)
		if !equalMessages(a.Messages, b.Messages) || a.Next != b.Next || a.Gap != b.Gap {
			t.Fatalf("reading after %q twice differs:\n%+v\n%+v", after, a, b)
		}
	}
}

// isolatedChannels are names that a careless key or subject encoding could
// make collide: prefixes of each other, and names differing only in a
// separator or in case.
var isolatedChannels = []string{
	"iso", "iso2", "is", "iso.a", "iso:a", "iso_a", "iso-a", "ISO", "iso.a.b", "iso.a2",
}

func testChannelsIsolated(t *testing.T, e Engine) {
	s, _ := open(t, e, Options{})
	want := map[string][]store.AppendResult{}
	data := map[string][][]byte{}
	for round := range len(isolatedChannels) {
		for i, ch := range isolatedChannels {
			if round > i {
				continue // channel i gets i+1 messages
			}
			d := fmt.Appendf(nil, "%s/%d", ch, round)
			want[ch] = append(want[ch], mustAppend(t, s, ch, d, ""))
			data[ch] = append(data[ch], d)
		}
	}
	for _, ch := range isolatedChannels {
		got := readAll(t, s, ch, store.Start, 100)
		checkMessages(t, "channel "+ch, got, want[ch], data[ch])
		b := mustBounds(t, s, ch)
		if b.Latest != want[ch][len(want[ch])-1].ID || b.Earliest != want[ch][0].ID {
			t.Fatalf("Bounds(%q) = %+v; want Earliest %q, Latest %q", ch, b, want[ch][0].ID, want[ch][len(want[ch])-1].ID)
		}
	}
}
