package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tether-run/tether/store"
)

var durabilityCases = []testCase{
	{"Reopen", testReopen},
	{"ConcurrentAppends", testConcurrentAppends},
	{"CloseWhileAppending", testCloseWhileAppending},
}

func testReopen(t *testing.T, e Engine) {
	s, dir := open(t, e, Options{})
	data := slices.Concat(payloads(), payloads())
	rs := make([]store.AppendResult, len(data))
	for i, d := range data {
		rs[i] = mustAppend(t, s, "durable", d, "")
	}
	other := appendN(t, s, "durable2", "x", 3)
	mustClose(t, s)

	s = reopen(t, e, dir, Options{})
	checkMessages(t, "after reopen", readAll(t, s, "durable", store.Start, 4), rs, data)
	if b := mustBounds(t, s, "durable"); b.Earliest != rs[0].ID || b.Latest != rs[len(rs)-1].ID {
		t.Fatalf("Bounds after reopen = %+v; want Earliest %q, Latest %q", b, rs[0].ID, rs[len(rs)-1].ID)
	}
	if got := readAll(t, s, "durable2", store.Start, 100); !equalCursors(messageIDs(got), ids(other)) {
		t.Fatalf("second channel after reopen = %q; want %q", messageIDs(got), ids(other))
	}

	// The log goes on where it was: a new cursor, readable after the old
	// Latest, and no old cursor reused.
	next := mustAppend(t, s, "durable", []byte("after reopen"), "")
	if slices.Contains(ids(rs), next.ID) {
		t.Fatalf("append after reopen reused cursor %q", next.ID)
	}
	r := mustRead(t, s, "durable", rs[len(rs)-1].ID, 10)
	if !equalCursors(messageIDs(r.Messages), []store.Cursor{next.ID}) {
		t.Fatalf("Read after the old Latest = %q; want [%q]", messageIDs(r.Messages), next.ID)
	}
}

// testConcurrentAppends checks that concurrent appends are all acknowledged
// once, with unique cursors, and read back in an order consistent with
// each publisher's own order.
func testConcurrentAppends(t *testing.T, e Engine) {
	const publishers, each = 64, 50
	s, _ := open(t, e, Options{})
	acked := make([][]store.AppendResult, publishers)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				r, err := s.Append(t.Context(), "many", fmt.Appendf(nil, "%d/%d", p, i), store.AppendOptions{})
				if err != nil {
					errs <- fmt.Errorf("publisher %d append %d: %w", p, i, err)
					return
				}
				acked[p] = append(acked[p], r)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	byID := map[store.Cursor]string{}
	for p, rs := range acked {
		for i, r := range rs {
			if prev, dup := byID[r.ID]; dup {
				t.Fatalf("cursor %q minted for %s and %d/%d", r.ID, prev, p, i)
			}
			byID[r.ID] = fmt.Sprintf("%d/%d", p, i)
		}
	}

	got := readAll(t, s, "many", store.Start, 97)
	if len(got) != publishers*each {
		t.Fatalf("read %d messages; want %d", len(got), publishers*each)
	}
	checkPublisherOrder(t, got, byID, publishers)
	if b := mustBounds(t, s, "many"); b.Latest != got[len(got)-1].ID {
		t.Fatalf("Latest = %q; want the last message read %q", b.Latest, got[len(got)-1].ID)
	}
}

// checkPublisherOrder fails t unless got, messages "<publisher>/<i>", holds
// each publisher's messages in the order it appended them, each under the
// cursor its append returned.
func checkPublisherOrder(t *testing.T, got []store.Message, byID map[store.Cursor]string, publishers int) {
	t.Helper()
	nextOf := make([]int, publishers) // next index expected from each publisher
	for _, m := range got {
		var p, i int
		if _, err := fmt.Sscanf(string(m.Data), "%d/%d", &p, &i); err != nil {
			t.Fatalf("message %q: %v", m.Data, err)
		}
		if i != nextOf[p] {
			t.Fatalf("publisher %d: read message %d where %d was due", p, i, nextOf[p])
		}
		if want := byID[m.ID]; want != string(m.Data) {
			t.Fatalf("message %q has cursor %q, which was acknowledged for %q", m.Data, m.ID, want)
		}
		nextOf[p]++
	}
}

// testCloseWhileAppending closes a store under load: every append must
// either be acknowledged (and then survive a reopen) or fail with
// ErrClosed.
func testCloseWhileAppending(t *testing.T, e Engine) {
	const publishers = 16
	s, dir := open(t, e, Options{})
	var (
		mu     sync.Mutex
		acked  = map[store.Cursor][]byte{}
		wg     sync.WaitGroup
		errs   = make(chan error, publishers)
		warmed = make(chan struct{}, publishers)
	)
	for p := range publishers {
		wg.Go(func() {
			for i := 0; ; i++ {
				d := fmt.Appendf(nil, "%d/%d", p, i)
				r, err := s.Append(context.Background(), "closing", d, store.AppendOptions{})
				if err != nil {
					if !errors.Is(err, store.ErrClosed) {
						errs <- fmt.Errorf("append %s: %v; want success or ErrClosed", d, err)
					}
					return
				}
				mu.Lock()
				acked[r.ID] = d
				mu.Unlock()
				if i == 2 {
					warmed <- struct{}{}
				}
			}
		})
	}
	for range publishers {
		<-warmed
	}
	mustClose(t, s)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	s = reopen(t, e, dir, Options{})
	found := 0
	for _, m := range readAll(t, s, "closing", store.Start, 1000) {
		if d, ok := acked[m.ID]; ok {
			if !bytes.Equal(d, m.Data) {
				t.Fatalf("message %q reads back as %q", m.ID, m.Data)
			}
			found++
		}
	}
	if found != len(acked) {
		t.Fatalf("%d of %d acknowledged appends survived Close and reopen", found, len(acked))
	}
}
