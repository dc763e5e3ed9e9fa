package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/tether-run/tether/conn"
)

// fakePeer is an in-process Peer. It records what the Registry asked of
// it; by default Close ends the connection (on the caller's goroutine) with
// the reason it was given, as a transport would from its own.
type fakePeer struct {
	mu       sync.Mutex
	h        *Handle          // guarded by mu; set by the test after Open
	hints    []time.Duration  // guarded by mu
	closes   []conn.CloseMode // guarded by mu
	reasons  []conn.Reason    // guarded by mu
	onNotify func(p *fakePeer, hint time.Duration)
	onClose  func(p *fakePeer, mode conn.CloseMode, reason conn.Reason)
}

func (p *fakePeer) Close(mode conn.CloseMode, reason conn.Reason) error {
	p.mu.Lock()
	p.closes = append(p.closes, mode)
	p.reasons = append(p.reasons, reason)
	h := p.h
	p.mu.Unlock()
	if p.onClose != nil {
		p.onClose(p, mode, reason)
	} else if h != nil {
		h.End(reason, 0)
	}
	return nil
}

func (p *fakePeer) NotifyShutdown(hint time.Duration) {
	p.mu.Lock()
	p.hints = append(p.hints, hint)
	p.mu.Unlock()
	if p.onNotify != nil {
		p.onNotify(p, hint)
	}
}

func (p *fakePeer) handle() *Handle {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h
}

func (p *fakePeer) record() (hints []time.Duration, closes []conn.CloseMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hints), slices.Clone(p.closes)
}

func newTestRegistry(t testing.TB, cfg Config) *Registry {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// open admits a fakePeer and wires its Handle.
func open(t testing.TB, r *Registry, oi OpenInfo, p *fakePeer) *Handle {
	t.Helper()
	h, err := r.Open(context.Background(), oi, p)
	if err != nil {
		t.Fatalf("Open(%+v): %v", oi, err)
	}
	p.mu.Lock()
	p.h = h
	p.mu.Unlock()
	return h
}

func TestRegistryOpenListEnd(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	tick := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }

	var connected []Info
	type disc struct {
		info   Info
		reason conn.Reason
	}
	var disconnected []disc
	r := newTestRegistry(t, Config{
		Now:          clock,
		OnConnect:    func(i Info) { connected = append(connected, i) },
		OnDisconnect: func(i Info, reason conn.Reason) { disconnected = append(disconnected, disc{i, reason}) },
	})
	a := open(t, r, OpenInfo{Transport: TransportTCP, Remote: "10.0.0.1:1"}, &fakePeer{})
	tick(time.Second)
	b := open(t, r, OpenInfo{Transport: TransportWebSocket, Remote: "10.0.0.2:2", SessionKey: "s"}, &fakePeer{})
	if len(connected) != 2 || connected[0].ID != a.ID() || connected[1].State != StateOpen {
		t.Fatalf("OnConnect saw %+v, want a then b, open", connected)
	}

	tick(time.Second)
	b.Count(10, 0)
	b.Count(0, 32)
	b.SetChannels([]string{"news", "sport"})
	tick(2 * time.Second)

	list := r.List()
	if len(list) != 2 || list[0].ID != a.ID() || list[1].ID != b.ID() {
		t.Fatalf("List = %+v, want a then b", list)
	}
	got := list[1]
	want := Info{
		ID: b.ID(), Transport: TransportWebSocket, Remote: "10.0.0.2:2", SessionKey: "s",
		State: StateOpen, Channels: []string{"news", "sport"},
		Started: now.Add(-3 * time.Second), Age: 3 * time.Second,
		BytesIn: 10, BytesOut: 32, LastActivity: now.Add(-2 * time.Second),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Info of b:\n got %+v\nwant %+v", got, want)
	}
	if list[0].Channels == nil {
		t.Error("Channels of a connection without channels is nil, want [] (JSON lists)")
	}
	if i, ok := r.Get(a.ID()); !ok || i.ID != a.ID() {
		t.Fatalf("Get(a) = %+v, %v", i, ok)
	}

	b.End(conn.ReasonHeartbeatTimeout, 5*time.Second)
	b.End(conn.ReasonClosed, 0) // later ends are no-ops
	select {
	case <-b.Done():
	default:
		t.Fatal("Done not closed after End returned")
	}
	if len(disconnected) != 1 || disconnected[0].reason != conn.ReasonHeartbeatTimeout ||
		disconnected[0].info.State != StateClosing || disconnected[0].info.BytesOut != 32 {
		t.Fatalf("OnDisconnect calls = %+v, want one, heartbeat-timeout, closing, 32 bytes out", disconnected)
	}
	if _, ok := r.Get(b.ID()); ok {
		t.Fatal("b still listed after End")
	}
	if i := b.Info(); i.State != StateClosed {
		t.Fatalf("b's state after End = %s, want closed", i.State)
	}
}

func TestRegistryClose(t *testing.T) {
	r := newTestRegistry(t, Config{})
	p := &fakePeer{}
	h := open(t, r, OpenInfo{Transport: TransportTCP}, p)
	if err := r.Close("nope", conn.CloseReset); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("Close(unknown) = %v, want ErrNoConnection", err)
	}
	if err := r.Close(h.ID(), "gently"); !errors.Is(err, conn.ErrBadCloseMode) {
		t.Fatalf("Close(bad mode) = %v, want ErrBadCloseMode", err)
	}
	if err := r.Close(h.ID(), conn.CloseDiscard); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	closes, reasons := p.closes, p.reasons
	p.mu.Unlock()
	if !slices.Equal(closes, []conn.CloseMode{conn.CloseDiscard}) || !slices.Equal(reasons, []conn.Reason{conn.ReasonKicked}) {
		t.Fatalf("Peer.Close calls = %v %v, want [discard] [kicked]", closes, reasons)
	}
	if _, ok := r.Get(h.ID()); ok {
		t.Fatal("connection still listed after it was closed")
	}
}

func TestConfigInvalid(t *testing.T) {
	if _, err := New(Config{AdmitTimeout: -1}); err == nil {
		t.Fatal("negative AdmitTimeout accepted")
	}
	r := newTestRegistry(t, Config{})
	if _, err := r.Open(context.Background(), OpenInfo{}, nil); err == nil {
		t.Fatal("Open without a Peer accepted")
	}
}

// TestSessionCleanupBeforeReadmission races the end of a session's
// connection against the arrival of its successor, round after round, on
// several keys at once (and a second, concurrent End of the predecessor).
// It fails if the predecessor's cleanup ever runs while the successor is
// admitted: seen by the cleanup itself (the
// successor is listed), or by the successor's OnConnect (the predecessor's
// cleanup has not finished).
func TestSessionCleanupBeforeReadmission(t *testing.T) {
	const keys, rounds = 8, 300

	var (
		mu         sync.Mutex
		holder     = map[string]string{} // key -> admitted id whose cleanup has not finished
		cleanups   = map[string]int{}    // id -> OnDisconnect calls
		violations []string
		reg        *Registry
	)
	violate := func(format string, args ...any) {
		mu.Lock()
		violations = append(violations, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	reg = newTestRegistry(t, Config{
		AdmitTimeout: 10 * time.Second,
		OnConnect: func(i Info) {
			mu.Lock()
			defer mu.Unlock()
			if prev := holder[i.SessionKey]; prev != "" {
				violations = append(violations, fmt.Sprintf("%s admitted before the cleanup of %s finished", i.ID, prev))
			}
			holder[i.SessionKey] = i.ID
		},
		OnDisconnect: func(i Info, _ conn.Reason) {
			// The cleanup takes a moment, during which a registry that
			// released the key too early would admit the successor.
			for range 3 {
				runtime.Gosched()
				for _, o := range reg.List() {
					if o.SessionKey == i.SessionKey && o.ID != i.ID {
						violate("%s admitted during the cleanup of %s", o.ID, i.ID)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if cleanups[i.ID]++; cleanups[i.ID] > 1 {
				violations = append(violations, fmt.Sprintf("cleanup of %s ran twice", i.ID))
			}
			if holder[i.SessionKey] != i.ID {
				violations = append(violations, fmt.Sprintf("cleanup of %s ran while %q held the key", i.ID, holder[i.SessionKey]))
			}
			holder[i.SessionKey] = ""
		},
	})

	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("session-%d", k)
			cur, err := reg.Open(context.Background(), OpenInfo{Transport: TransportTCP, SessionKey: key}, &fakePeer{})
			if err != nil {
				violate("first Open on %s: %v", key, err)
				return
			}
			for range rounds {
				start := make(chan struct{})
				var next *Handle
				var err error
				var round sync.WaitGroup
				round.Go(func() { <-start; cur.End(conn.ReasonClosed, 0) })
				round.Go(func() { <-start; cur.End(conn.ReasonKicked, 0) }) // a second end: a no-op
				round.Go(func() {
					<-start
					next, err = reg.Open(context.Background(), OpenInfo{Transport: TransportTCP, SessionKey: key}, &fakePeer{})
				})
				close(start)
				round.Wait()
				if err != nil {
					violate("Open on %s: %v", key, err)
					return
				}
				cur = next
			}
			cur.End(conn.ReasonClosed, 0)
		})
	}
	wg.Wait()
	if len(violations) > 0 {
		t.Fatalf("%d violations, first: %s", len(violations), violations[0])
	}
	if n := len(reg.List()); n != 0 {
		t.Fatalf("%d connections left, want 0", n)
	}
}

// TestSessionAdmissionWaits checks, in a synctest bubble, that a successor
// is admitted exactly when its predecessor's cleanup returns, and not
// before.
func TestSessionAdmissionWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		r := newTestRegistry(t, Config{
			OnDisconnect: func(Info, conn.Reason) { <-release },
		})
		oi := OpenInfo{Transport: TransportWebSocket, SessionKey: "k"}
		a := open(t, r, oi, &fakePeer{})
		go a.End(conn.ReasonReset, 0)
		synctest.Wait() // a's cleanup is running

		type result struct {
			h   *Handle
			err error
		}
		got := make(chan result, 1)
		go func() {
			h, err := r.Open(context.Background(), oi, &fakePeer{})
			got <- result{h, err}
		}()
		time.Sleep(time.Second) // fake time: the cleanup takes a second
		synctest.Wait()
		select {
		case res := <-got:
			t.Fatalf("successor admitted (%v) while the cleanup ran", res.err)
		default:
		}
		close(release)
		synctest.Wait()
		select {
		case res := <-got:
			if res.err != nil {
				t.Fatalf("Open after cleanup: %v", res.err)
			}
			res.h.End(conn.ReasonClosed, 0)
		default:
			t.Fatal("successor not admitted after the cleanup returned")
		}
	})
}

func TestSessionAdmissionBounded(t *testing.T) {
	oi := OpenInfo{Transport: TransportTCP, SessionKey: "k"}
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newTestRegistry(t, Config{AdmitTimeout: 2 * time.Second})
			a := open(t, r, oi, &fakePeer{})
			t0 := time.Now()
			_, err := r.Open(context.Background(), oi, &fakePeer{})
			if !errors.Is(err, ErrAdmitTimeout) || time.Since(t0) != 2*time.Second {
				t.Fatalf("Open = %v after %v, want ErrAdmitTimeout after 2s", err, time.Since(t0))
			}
			// The refused connection left no trace; the key is still a's.
			if l := r.List(); len(l) != 1 || l[0].ID != a.ID() {
				t.Fatalf("List = %+v, want only a", l)
			}
			a.End(conn.ReasonClosed, 0)
			b := open(t, r, oi, &fakePeer{})
			b.End(conn.ReasonClosed, 0)
		})
	})
	t.Run("ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newTestRegistry(t, Config{})
			a := open(t, r, oi, &fakePeer{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := r.Open(ctx, oi, &fakePeer{}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Open = %v, want context.DeadlineExceeded", err)
			}
			a.End(conn.ReasonClosed, 0)
		})
	})
	t.Run("shutdown", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newTestRegistry(t, Config{})
			open(t, r, oi, &fakePeer{})
			got := make(chan error, 1)
			go func() {
				_, err := r.Open(context.Background(), oi, &fakePeer{})
				got <- err
			}()
			synctest.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := r.Shutdown(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if err := <-got; !errors.Is(err, ErrRegistryClosed) {
				t.Fatalf("waiting Open = %v, want ErrRegistryClosed", err)
			}
			if _, err := r.Open(context.Background(), OpenInfo{}, &fakePeer{}); !errors.Is(err, ErrRegistryClosed) {
				t.Fatalf("Open after Shutdown = %v, want ErrRegistryClosed", err)
			}
		})
	})
}

func TestRegistryMetrics(t *testing.T) {
	preg := prometheus.NewRegistry()
	r := newTestRegistry(t, Config{Registerer: preg})
	// A second Registry on the same Registerer shares the series.
	r2 := newTestRegistry(t, Config{Registerer: preg})

	a := open(t, r, OpenInfo{Transport: TransportTCP}, &fakePeer{})
	open(t, r, OpenInfo{Transport: TransportTCP}, &fakePeer{})
	c := open(t, r2, OpenInfo{Transport: TransportWebSocket}, &fakePeer{})
	a.End(conn.ReasonHeartbeatTimeout, 3*time.Second)
	c.End(conn.ReasonKicked, 0)

	fams, err := preg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName() + labels(m)
			switch {
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				got[key+"_count"] = float64(m.Histogram.GetSampleCount())
				got[key+"_sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	want := map[string]float64{
		"tether_connections_open{transport=tcp}":                               1,
		"tether_connections_open{transport=websocket}":                         0,
		"tether_connection_ends_total{reason=heartbeat-timeout,transport=tcp}": 1,
		"tether_connection_ends_total{reason=kicked,transport=websocket}":      1,
		"tether_connection_end_notice_seconds{reason=heartbeat-timeout}_count": 1,
		"tether_connection_end_notice_seconds{reason=heartbeat-timeout}_sum":   3,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics:\n got %v\nwant %v", got, want)
	}
}

func labels(m *dto.Metric) string {
	s := "{"
	for i, l := range m.GetLabel() {
		if i > 0 {
			s += ","
		}
		s += l.GetName() + "=" + l.GetValue()
	}
	return s + "}"
}

// BenchmarkHandleCount measures the per-frame accounting transports do,
// from many goroutines on one connection.
func BenchmarkHandleCount(b *testing.B) {
	r := newTestRegistry(b, Config{})
	h := open(b, r, OpenInfo{Transport: TransportTCP}, &fakePeer{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Count(100, 200)
		}
	})
	h.End(conn.ReasonClosed, 0)
}
