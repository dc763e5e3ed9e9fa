package registry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
)

// manualClock is a clock the test moves by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openFor(t *testing.T, r *Registry, tr Transport, sub string) *Handle {
	t.Helper()
	p := &fakePeer{}
	h, err := r.Open(context.Background(), OpenInfo{Transport: tr, Sub: sub}, p)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.h = h
	p.mu.Unlock()
	return h
}

func TestCensus(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var hs []*Handle
	for _, c := range []struct {
		tr  Transport
		sub string
	}{
		{TransportWebSocket, "alice"}, {TransportSSE, "alice"}, {TransportSSE, "alice"},
		{TransportTCP, "bob"}, {TransportLongPoll, "bob"}, {TransportWebSocket, "carol"},
	} {
		hs = append(hs, openFor(t, r, c.tr, c.sub))
	}
	got := r.Census(2)
	if got.Total != 6 {
		t.Errorf("Total = %d, want 6", got.Total)
	}
	want := map[Transport]int{TransportWebSocket: 2, TransportSSE: 2, TransportTCP: 1, TransportLongPoll: 1}
	for tr, n := range want {
		if got.ByTransport[tr] != n {
			t.Errorf("ByTransport[%s] = %d, want %d", tr, got.ByTransport[tr], n)
		}
	}
	if len(got.Users) != 2 || got.Users[0].Sub != "alice" || got.Users[0].Total != 3 || got.Users[1].Sub != "bob" || got.OtherUsers != 1 {
		t.Fatalf("Users = %+v, other %d; want alice (3), bob (2), 1 other", got.Users, got.OtherUsers)
	}
	if got.Users[0].ByTransport[TransportSSE] != 2 {
		t.Errorf("alice's SSE = %d, want 2", got.Users[0].ByTransport[TransportSSE])
	}
	for _, h := range hs {
		h.End(conn.ReasonClosed, 0)
	}
	if got := r.Census(10); got.Total != 0 || len(got.Users) != 0 {
		t.Errorf("after every end: %+v, want empty", got)
	}
}

func TestEnds(t *testing.T) {
	clk := &manualClock{now: time.Unix(1_800_000_000, 0)}
	r, err := New(Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	end := func(tr Transport, reason conn.Reason) {
		openFor(t, r, tr, "u").End(reason, 0)
	}
	end(TransportWebSocket, conn.ReasonClosed)
	end(TransportWebSocket, conn.ReasonReset)
	end(TransportSSE, conn.ReasonReset)
	clk.add(1500 * time.Millisecond)
	end(TransportSSE, conn.ReasonReset)

	e := r.Ends()
	totals := map[endKey]uint64{}
	for _, c := range e.Totals {
		totals[endKey{c.Transport, c.Reason}] = c.Count
	}
	want := map[endKey]uint64{
		{TransportWebSocket, conn.ReasonClosed}: 1,
		{TransportWebSocket, conn.ReasonReset}:  1,
		{TransportSSE, conn.ReasonReset}:        2,
	}
	if len(totals) != len(want) {
		t.Errorf("Totals = %+v, want %v", e.Totals, want)
	}
	for k, n := range want {
		if totals[k] != n {
			t.Errorf("Totals[%v] = %d, want %d", k, totals[k], n)
		}
	}
	if len(e.Recent) != 2 {
		t.Fatalf("Recent = %+v, want two seconds", e.Recent)
	}
	if r0 := e.Recent[0].Reasons; r0[conn.ReasonClosed] != 1 || r0[conn.ReasonReset] != 2 {
		t.Errorf("first second = %v, want closed 1, reset 2", r0)
	}
	if r1 := e.Recent[1].Reasons; r1[conn.ReasonReset] != 1 || len(r1) != 1 {
		t.Errorf("second second = %v, want reset 1", r1)
	}
	if !e.Recent[1].Time.After(e.Recent[0].Time) {
		t.Errorf("Recent not oldest first: %v", e.Recent)
	}

	// A slot is reused a window later: old seconds leave Recent, totals stay.
	clk.add(EndWindow)
	end(TransportTCP, conn.ReasonHeartbeatTimeout)
	e = r.Ends()
	if len(e.Recent) != 1 || e.Recent[0].Reasons[conn.ReasonHeartbeatTimeout] != 1 || len(e.Recent[0].Reasons) != 1 {
		t.Errorf("a window later, Recent = %+v, want only the heartbeat-timeout", e.Recent)
	}
	if len(e.Totals) != 4 {
		t.Errorf("Totals = %+v, want 4 entries", e.Totals)
	}
}

// BenchmarkEndsAdd is the cost the end counting adds to every connection
// end, from many goroutines at once.
func BenchmarkEndsAdd(b *testing.B) {
	var e endStats
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.add(TransportLongPoll, conn.ReasonCompleted, now)
		}
	})
}

// BenchmarkCensus is one Census of 10,000 live connections of 1,000 users.
func BenchmarkCensus(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10_000 {
		if _, err := r.Open(context.Background(), OpenInfo{Transport: TransportWebSocket, Sub: fmt.Sprint("u", i%1000)}, &fakePeer{}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		r.Census(20)
	}
}
