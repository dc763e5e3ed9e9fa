package registry

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-run/tether/conn"
)

func TestShutdownPhases(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name           string
		window         time.Duration // 0: no deadline
		wantAck, wantG time.Duration // from now; -1: zero time
	}{
		{"long window keeps 1s", 30 * time.Second, 29 * time.Second, 29*time.Second + 500*time.Millisecond},
		{"short window keeps a quarter", 2 * time.Second, 1500 * time.Millisecond, 1750 * time.Millisecond},
		{"deadline passed", -time.Second, -time.Second, -time.Second},
		{"no deadline", 0, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.window != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, now.Add(tc.window))
				defer cancel()
			}
			ack, grace := shutdownPhases(ctx, now)
			at := func(d time.Duration) time.Time {
				if d == -1 {
					return time.Time{}
				}
				return now.Add(d)
			}
			if !ack.Equal(at(tc.wantAck)) || !grace.Equal(at(tc.wantG)) {
				t.Fatalf("phases = %v, %v; want %v, %v", ack, grace, at(tc.wantAck), at(tc.wantG))
			}
		})
	}
}

// TestShutdownFakePeers runs Shutdown in a synctest bubble over peers that
// leave when told, peers that leave only when closed gracefully, and peers
// that hold on until reset: every one is told once, hints are evenly spread
// in connection order, each straggler gets graceful then reset, and
// Shutdown returns within its deadline.
func TestShutdownFakePeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		const spread = 10 * time.Second
		var mu sync.Mutex
		reasons := map[string]conn.Reason{}
		r := newTestRegistry(t, Config{OnDisconnect: func(i Info, reason conn.Reason) {
			mu.Lock()
			reasons[i.ID] = reason
			mu.Unlock()
		}})

		var ends sync.WaitGroup // transports' goroutines that call conn.End
		endLater := func(p *fakePeer, reason conn.Reason, after time.Duration) {
			ends.Go(func() {
				time.Sleep(after)
				p.handle().End(reason, 0)
			})
		}
		peers := make([]*fakePeer, n)
		handles := make([]*Handle, n)
		for i := range peers {
			p := &fakePeer{}
			switch i % 4 {
			case 0, 1: // leaves when told, after a while
				p.onNotify = func(p *fakePeer, _ time.Duration) {
					endLater(p, conn.ReasonClosed, time.Duration(i)*10*time.Millisecond)
				}
			case 2: // leaves when the server closes gracefully
				p.onClose = func(p *fakePeer, _ conn.CloseMode, reason conn.Reason) { endLater(p, reason, 0) }
			case 3: // holds on until reset
				p.onClose = func(p *fakePeer, mode conn.CloseMode, reason conn.Reason) {
					if mode == conn.CloseReset {
						endLater(p, reason, 0)
					}
				}
			}
			peers[i] = p
			handles[i] = open(t, r, OpenInfo{Transport: TransportTCP}, p)
			time.Sleep(time.Millisecond) // distinct Started: the order is the connection order
		}

		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		t0 := time.Now()
		if err := r.Shutdown(ctx, spread); err != nil {
			t.Fatalf("Shutdown = %v, want nil", err)
		}
		// Fake time is exact: a reserve of 1s (a quarter of 4s), the
		// graceful phase ends when half of it is left, and the stubborn
		// peers end at once on reset.
		if d := time.Since(t0); d != 3500*time.Millisecond {
			t.Fatalf("Shutdown took %v, want 3.5s", d)
		}
		ends.Wait()

		for i, p := range peers {
			hints, closes := p.record()
			if want := []time.Duration{spread * time.Duration(i) / n}; !slices.Equal(hints, want) {
				t.Errorf("peer %d: hints %v, want %v", i, hints, want)
			}
			var wantCloses []conn.CloseMode
			wantReason := conn.ReasonShutdown
			switch i % 4 {
			case 0, 1:
				wantReason = conn.ReasonClosed
			case 2:
				wantCloses = []conn.CloseMode{conn.CloseGraceful}
			case 3:
				wantCloses = []conn.CloseMode{conn.CloseGraceful, conn.CloseReset}
			}
			if !slices.Equal(closes, wantCloses) {
				t.Errorf("peer %d: closes %v, want %v", i, closes, wantCloses)
			}
			if got := reasons[handles[i].ID()]; got != wantReason {
				t.Errorf("peer %d: end reason %q, want %q", i, got, wantReason)
			}
		}
		if l := r.List(); len(l) != 0 {
			t.Fatalf("%d connections left after Shutdown", len(l))
		}
	})
}

// A connection that does not end even when reset makes Shutdown return
// ctx's error at the deadline, not later.
func TestShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newTestRegistry(t, Config{})
		p := &fakePeer{onClose: func(*fakePeer, conn.CloseMode, conn.Reason) {}} // never ends
		h := open(t, r, OpenInfo{Transport: TransportWebSocket}, p)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		t0 := time.Now()
		if err := r.Shutdown(ctx, time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(t0); d != 2*time.Second {
			t.Fatalf("Shutdown took %v, want the 2s deadline", d)
		}
		if _, closes := p.record(); !slices.Equal(closes, []conn.CloseMode{conn.CloseGraceful, conn.CloseReset}) {
			t.Fatalf("closes %v, want graceful then reset", closes)
		}
		h.End(conn.ReasonShutdown, 0)
	})
}
