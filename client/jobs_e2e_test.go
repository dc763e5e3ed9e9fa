package client

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// effectLine is one line of tether-worker's --effects-log.
type effectLine struct {
	job      string
	end, pid int64
}

func readEffects(t testing.TB, path string) map[string]effectLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string]effectLine{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		end, _ := strconv.ParseInt(f[3], 10, 64)
		pid, _ := strconv.ParseInt(f[4], 10, 64)
		out[f[0]] = effectLine{job: f[0], end: end, pid: pid}
	}
	return out
}

// Jobs().Run cancelled through its ctx ends the worker handler's context
// within 100 ms (p99 over 100 runs), and the same worker process runs the
// next job.
func TestJobsRunCancel(t *testing.T) {
	srv := startServer(t)
	b := needBinaries(t)
	effects := filepath.Join(t.TempDir(), "effects.log")
	w := startProc(t, b.worker, "--url", srv.ws(), "--id", "w1", "--types", "sleep", "--concurrency", "1",
		"--effects-log", effects, "--log-format", "json")
	w.waitLog(t, 30*time.Second, "connected")
	c := dial(t, srv.ws(), Config{})

	// One job that runs to the end first: Run returns its result.
	res, err := c.Jobs().Run(context.Background(), "sleep", map[string]int{"ms": 1}, JobOptions{})
	if err != nil || string(res) != `{"slept_ms":1}` {
		t.Fatalf("Run = %s, %v; want {\"slept_ms\":1}", res, err)
	}

	const runs = 100
	lat := make([]time.Duration, 0, runs)
	for i := range runs {
		ctx, cancel := context.WithCancel(context.Background())
		var t0 time.Time
		var ref JobRef
		_, err := c.Jobs().Run(ctx, "sleep", map[string]any{"ms": 60000, "progress": true}, JobOptions{
			OnCreated:  func(r JobRef) { ref = r },
			OnProgress: func(json.RawMessage) { t0 = time.Now(); cancel() },
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: Run = %v, want context.Canceled", i, err)
		}
		var e effectLine
		waitFor(t, 10*time.Second, "handler of job "+ref.ID+" returned", func() bool {
			var ok bool
			e, ok = readEffects(t, effects)[ref.ID]
			return ok
		})
		if e.pid != int64(w.pid()) {
			t.Fatalf("run %d: job ran in pid %d, want the one worker process %d", i, e.pid, w.pid())
		}
		lat = append(lat, time.Unix(0, e.end).Sub(t0))
	}
	slices.Sort(lat)
	p50, p99 := lat[runs/2-1], lat[runs*99/100-1]
	t.Logf("ctx cancel -> worker handler ctx ended, %d runs: p50 %v, p99 %v, max %v",
		runs, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), lat[runs-1].Round(10*time.Microsecond))
	if p99 > 100*time.Millisecond {
		t.Fatalf("p99 %v, want within 100ms", p99)
	}
	select {
	case <-w.done:
		t.Fatal("the worker process exited")
	default:
	}
	// It still runs the next job.
	if res, err := c.Jobs().Run(context.Background(), "sleep", map[string]int{"ms": 1}, JobOptions{}); err != nil || string(res) != `{"slept_ms":1}` {
		t.Fatalf("after the cancels, Run = %s, %v", res, err)
	}
}

// Jobs().Run works over the SSE fallback too: result, and cancel by ctx.
func TestJobsOverFallback(t *testing.T) {
	srv := startServer(t)
	b := needBinaries(t)
	w := startProc(t, b.worker, "--url", srv.ws(), "--id", "w1", "--types", "sleep", "--log-format", "json")
	w.waitLog(t, 30*time.Second, "connected")
	proxy := startNoUpgradeProxy(t, srv.http())
	st := newStates()
	c := dial(t, proxy.URL, Config{OnState: st.on})
	if sc, _ := st.wait(t, 5*time.Second, 0, "connected", func(sc StateChange) bool { return sc.State == StateConnected }); sc.Transport != TransportSSE {
		t.Fatalf("transport %q, want sse", sc.Transport)
	}
	var progress []string
	res, err := c.Jobs().Run(context.Background(), "sleep", map[string]any{"ms": 1, "progress": true}, JobOptions{
		OnProgress: func(p json.RawMessage) { progress = append(progress, string(p)) },
	})
	if err != nil || string(res) != `{"slept_ms":1}` || !slices.Equal(progress, []string{`{"started":true}`}) {
		t.Fatalf("Run = %s, %v, progress %q; want {\"slept_ms\":1}, one progress", res, err, progress)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var ref JobRef
	_, err = c.Jobs().Run(ctx, "sleep", map[string]any{"ms": 60000, "progress": true}, JobOptions{
		OnCreated:  func(r JobRef) { ref = r },
		OnProgress: func(json.RawMessage) { cancel() },
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Run = %v, want context.Canceled", err)
	}
	waitFor(t, 10*time.Second, "job recorded canceled", func() bool {
		raw, err := c.Jobs().Get(context.Background(), ref.ID)
		var j struct{ State string }
		json.Unmarshal(raw, &j)
		return err == nil && j.State == "canceled"
	})
}
