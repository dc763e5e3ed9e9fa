package tether_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/store/pebblestore"
)

// lateListener stands for a Serve goroutine that a loaded machine has not
// yet scheduled: once its listener is closed, Accept reports it only after
// a delay.
type lateListener struct {
	net.Listener
	late time.Duration
}

func (l lateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		time.Sleep(l.late) // the late wake-up being simulated, not a wait for a condition
	}
	return c, err
}

// Shutdown stops accepting before it drains, and http.Server.Shutdown then
// closes the same listener again. When Serve has not yet noticed the first
// close (on a loaded machine: 3 in 600 Start/Stop cycles, and twice in a
// row in CI-like runs), that second close used to fail Shutdown with "use
// of closed network connection". Here Serve notices late on every cycle,
// with a CPU hog on every core besides.
func TestShutdownWhileServeNoticesLate(t *testing.T) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var stop atomic.Bool
	var hogs sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		hogs.Go(func() {
			for x := 0; !stop.Load(); x++ {
				_ = x * x
			}
		})
	}
	defer func() { stop.Store(true); hogs.Wait() }()

	logger := slog.New(slog.DiscardHandler)
	for i := range 5 {
		n, err := tether.New(tether.Config{}, tether.WithStore(st), tether.WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := tether.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- n.Serve(lateListener{ln, 200 * time.Millisecond}) }()
		resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: shutdown: %v", i, err)
		}
		if err := <-served; err != nil {
			t.Fatalf("cycle %d: Serve returned %v, want nil after Shutdown", i, err)
		}
	}
}

// A create waiting for its job's outcome (?wait=) is not a connection of
// the registry, yet the one Shutdown reaches it: it answers 202 with the
// job's id at once, and the job is kept.
func TestShutdownAnswersWaitingJobCreate(t *testing.T) {
	n := startNode(t, nil)
	type answer struct {
		status int
		id     string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post(n.base+"/v1/jobs?wait=60s", "application/json", strings.NewReader(`{"type":"nobody-runs-this"}`))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var ref struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&ref)
		answered <- answer{status: resp.StatusCode, id: ref.ID, err: err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for n.metric("tether_jobs_created_total", nil) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the job was never created")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition against a deadline
	}
	stopped := time.Now()
	go n.stop()
	select {
	case a := <-answered:
		if a.err != nil || a.status != http.StatusAccepted || a.id == "" {
			t.Fatalf("waiting create answered %d %q (%v); want 202 with the job's id", a.status, a.id, a.err)
		}
		if d := time.Since(stopped); d > 5*time.Second {
			t.Errorf("answered %v after the stop began", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting create was not answered on shutdown")
	}
}
