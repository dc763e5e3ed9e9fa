package natsstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// TestReadFromTail checks that a Store that reads a channel keeps its
// newest messages in memory, those appended through another Store once its
// watch delivers them and its own once they are acknowledged: reads and
// waits after any of them are then answered with the NATS server gone.
func TestReadFromTail(t *testing.T) {
	srv := startServer(t, t.TempDir())
	a := openStore(t, srv.ClientURL(), Config{})
	b := openStore(t, srv.ClientURL(), Config{})
	ctx := t.Context()
	var ids []store.Cursor
	appendOn := func(s *Store, data string) {
		t.Helper()
		res, err := s.Append(ctx, "tail", []byte(data), store.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	appendOn(a, "m0")
	if r, err := b.Read(ctx, "tail", store.Start, 10); err != nil || len(r.Messages) != 1 {
		t.Fatalf("Read = %+v, %v; want m0", r, err)
	}
	for i := 1; i <= 4; i++ {
		appendOn(a, fmt.Sprint("m", i))
	}
	tailLast := func() uint64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		tl := b.chans["tail"].tail
		if len(tl.msgs) == 0 {
			return 0
		}
		return tl.msgs[len(tl.msgs)-1].seq
	}
	m4, _ := parseCursor(ids[4])
	waitFor(t, wakeBound, "b's tail to hold a's m4", func() bool { return tailLast() == m4 })
	// b's own append enters its tail when it is acknowledged.
	appendOn(b, "m5")
	if m5, _ := parseCursor(ids[5]); tailLast() != m5 {
		t.Fatalf("b's tail ends at %d after b appended %d", tailLast(), m5)
	}

	shutdown(srv)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for from := range 5 {
		r, err := b.Read(rctx, "tail", ids[from], 2)
		want := ids[from+1 : min(from+3, len(ids))]
		if err != nil || r.Gap || len(r.Messages) != len(want) {
			t.Fatalf("Read after m%d with NATS down = %+v, %v; want %v", from, r, err, want)
		}
		for i, m := range r.Messages {
			if m.ID != want[i] || string(m.Data) != fmt.Sprint("m", from+1+i) {
				t.Fatalf("Read after m%d: message %d = %q %q; want %q", from, i, m.ID, m.Data, want[i])
			}
		}
		if err := b.Wait(rctx, "tail", ids[from]); err != nil {
			t.Fatalf("Wait after m%d with NATS down: %v; want an answer from memory", from, err)
		}
	}
	if r, err := b.Read(rctx, "tail", ids[5], 10); err != nil || len(r.Messages) != 0 || r.Next != ids[5] {
		t.Fatalf("Read after the newest with NATS down = %+v, %v; want nothing, Next %q", r, err, ids[5])
	}
}

// TestTailBounds checks the tail's run rules without a server: a message
// whose predecessor is not the newest starts a new run, the per-channel
// bound drops the oldest, and cursors between two messages are refused.
func TestTailBounds(t *testing.T) {
	s := &Store{chans: map[string]*channel{}}
	c := s.entryLocked("x", true)
	c.waiters = 1
	s.recordLocked(c, stored{seq: 10, prev: 4})
	s.recordLocked(c, stored{seq: 12, prev: 10})
	for _, tc := range []struct {
		cur  uint64
		i    int
		want bool
	}{{4, 0, true}, {10, 1, true}, {12, 2, true}, {3, 0, false}, {5, 0, false}, {11, 0, false}, {13, 0, false}} {
		if i, ok := c.tail.after(tc.cur); ok != tc.want || ok && i != tc.i {
			t.Errorf("after(%d) = %d, %v; want %d, %v", tc.cur, i, ok, tc.i, tc.want)
		}
	}
	s.recordLocked(c, stored{seq: 20, prev: 15}) // the watch missed 15
	if c.tail.base != 15 || len(c.tail.msgs) != 1 {
		t.Fatalf("after a hole: base %d, %d messages; want a new run after 15", c.tail.base, len(c.tail.msgs))
	}
	prev := uint64(20)
	for i := range tailMsgs + 10 {
		seq := uint64(21 + i)
		s.recordLocked(c, stored{seq: seq, prev: prev, data: []byte("d")})
		prev = seq
	}
	if n := len(c.tail.msgs); n != tailMsgs || c.tail.base != c.tail.msgs[0].seq-1 {
		t.Fatalf("tail holds %d messages after base %d (first %d); want %d, base just before the first", n, c.tail.base, c.tail.msgs[0].seq, tailMsgs)
	}
	if s.tailBytes != c.tail.bytes || c.tail.bytes != tailMsgs*(1+tailOverhead) {
		t.Fatalf("tail bytes %d, store %d; want %d", c.tail.bytes, s.tailBytes, tailMsgs*(1+tailOverhead))
	}
}
