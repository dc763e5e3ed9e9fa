package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rssLoad is one bounded load on a tether binary: conns WebSocket
// connections, each subscribed to a channel of its own and to one shared
// channel; one HTTP publish of 1 KiB to each of channels distinct
// channels; every tenth connection publishing a 512 KiB frame to its own
// channel and receiving it back; shared messages to the shared channel,
// received by every connection. It returns once every connection has
// received what it should and has closed, and the server lists none.
type rssLoad struct {
	conns, channels, shared int
}

func (l rssLoad) run(t *testing.T, p *proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(p.base, "http") + "/v1/ws"
	large := `"` + strings.Repeat("L", 512<<10) + `"`

	// Connect and subscribe every connection before anything is published.
	// Each reads (and answers pings) from the moment it is subscribed until
	// it closes; enough counts those that have what they should.
	clients := make([]*rssClient, l.conns)
	var dials, readers, enough sync.WaitGroup
	defer readers.Wait()
	enough.Add(l.conns)
	for w := range 32 {
		dials.Go(func() {
			for i := w; i < l.conns; i += 32 {
				c, err := dialRSS(ctx, wsURL, i)
				if err != nil {
					t.Errorf("connection %d: %v", i, err)
					enough.Done()
					continue
				}
				clients[i] = c
				want := l.shared
				if i%10 == 0 {
					want++ // its own large message
				}
				readers.Go(func() {
					if err := c.readMessages(ctx, want, enough.Done); err != nil {
						t.Errorf("connection %d: %v", i, err)
					}
				})
			}
		})
	}
	dials.Wait()
	if t.Failed() {
		l.closeAll(clients)
		t.FailNow()
	}

	var next atomic.Int64
	var pubs sync.WaitGroup
	for range 32 {
		pubs.Go(func() {
			body := `{"pad":"` + strings.Repeat("p", 1000) + `"}`
			for k := int(next.Add(1) - 1); k < l.channels; k = int(next.Add(1) - 1) {
				if _, ok := tryPublish(p, fmt.Sprintf("rss-ch-%d", k), body, ""); !ok {
					t.Errorf("publish to rss-ch-%d failed", k)
					return
				}
			}
		})
	}
	for i := 0; i < l.conns; i += 10 {
		pubs.Go(func() {
			if err := clients[i].send(ctx, `{"id":"big","type":"publish","channel":"rss-own-`+fmt.Sprint(i)+`","data":`+large+`}`); err != nil {
				t.Errorf("connection %d: large publish: %v", i, err)
			}
		})
	}
	for k := range l.shared {
		publishOne(t, p, "rss-all", fmt.Sprintf(`{"n":%d,"pad":"%s"}`, k, strings.Repeat("s", 4<<10)), "")
	}
	pubs.Wait()
	enough.Wait()
	if t.Failed() {
		t.Logf("connection ends so far: %s", connectionEnds(p))
	}
	l.closeAll(clients)
	waitFor(t, 30*time.Second, "every load connection to end", func() bool { return countConnections(p) == 0 })
	t.Logf("%d connections: ends %s", l.conns, connectionEnds(p))
}

func (l rssLoad) closeAll(clients []*rssClient) {
	for _, c := range clients {
		if c != nil {
			c.c.Close(websocket.StatusNormalClosure, "")
		}
	}
}

// rssClient is one WebSocket connection of the load.
type rssClient struct {
	c  *websocket.Conn
	mu sync.Mutex // serialises writes
}

// dialRSS connects and subscribes to rss-own-i and rss-all.
func dialRSS(ctx context.Context, url string, i int) (*rssClient, error) {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(2 << 20)
	rc := &rssClient{c: c}
	for _, sub := range []string{`{"id":"o","type":"subscribe","channel":"rss-own-` + fmt.Sprint(i) + `"}`, `{"id":"a","type":"subscribe","channel":"rss-all"}`} {
		if err := rc.send(ctx, sub); err != nil {
			c.CloseNow()
			return nil, err
		}
		var f struct{ Type, ID string }
		for f.Type != "reply" {
			_, b, err := c.Read(ctx)
			if err != nil {
				c.CloseNow()
				return nil, err
			}
			json.Unmarshal(b, &f)
		}
	}
	return rc, nil
}

func (rc *rssClient) send(ctx context.Context, frame string) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.c.Write(ctx, websocket.MessageText, []byte(frame))
}

// readMessages reads until the connection closes, answering pings, and
// calls enough once want message frames came (or it fails first).
func (rc *rssClient) readMessages(ctx context.Context, want int, enough func()) (err error) {
	got := 0
	defer func() {
		if got < want {
			enough()
			if err == nil {
				err = fmt.Errorf("closed after %d of %d messages", got, want)
			}
			return
		}
		err = nil // closed by the test once it had enough
	}()
	for {
		_, b, err := rc.c.Read(ctx)
		if err != nil {
			return fmt.Errorf("%d of %d messages: %w", got, want, err)
		}
		var f struct{ Type, ID, Code string }
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		switch f.Type {
		case "message":
			if got++; got == want {
				enough()
			}
		case "ping":
			if err := rc.send(ctx, `{"type":"pong","id":"`+f.ID+`"}`); err != nil {
				return err
			}
		case "error":
			return fmt.Errorf("error frame: %.200s", b)
		}
	}
}

// connectionEnds returns the server's tether_connection_ends_total lines.
func connectionEnds(p *proc) string { return metricLines(p, "tether_connection_ends_total{") }

// metricLines returns the server's metrics whose lines start with prefix.
func metricLines(p *proc, prefix string) string {
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "; ")
}

// rssSampler records the highest RSS of a process until stopped.
func rssSampler(t *testing.T, pid int) (stop func() int64) {
	var peak atomic.Int64
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			peak.Store(max(peak.Load(), rssOf(t, pid)))
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-exited
		return peak.Load()
	}
}

// TestRSSReturnsAfterLoad runs a bounded load on the tether binary, 2,000
// WebSocket connections, 20,000 channels published to once, 200 frames of
// 512 KiB and a shared channel fanned out to every connection, and checks
// that once it has ended and every connection closed, the server's RSS
// comes back to within 10% + 16 MiB of what it was after a warm-up round
// of a tenth of the load.
//
// Go gives memory back to the OS lazily: after the load the heap goal is
// still the one of the load's peak until the next collection, which an
// idle process runs only every two minutes (the runtime's forced GC),
// and the scavenger then returns the pages over a few seconds. tether has
// no hook to force that, so the test polls for up to 240 s. The 16 MiB
// are what the embedded store may rightly keep after the load and not
// after the warm-up: Pebble's block cache (8 MiB) and memtables (4 MiB).
//
// It failed while session's shared-read pages outlived the load (pruned
// only by a later read of their channel, or a sweep every 1,024 reads): an
// idle server kept the last pages of every channel, 220 MB of 512 KiB
// messages and their encodings here. A timed sweep lets them go now.
func TestRSSReturnsAfterLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections and up to 240 s of waiting for the runtime")
	}
	// Heartbeats and the lag bound at a slower pace than the default: on a
	// loaded 2-core machine, 2,000 clients in one test process (under the
	// race detector in CI) answered some pings late (heartbeat-timeout)
	// and read 512 KiB frames more than 30 s late (slow-consumer: 74 of
	// 2,000 in one CI run), and what is measured here is memory.
	p := startBinary(t, t.TempDir(), "--channel-idle", "2s", "--heartbeat-interval", "20s", "--heartbeat-timeout", "60s", "--max-lag", "5m")
	pid := p.cmd.Process.Pid
	rssLoad{conns: 200, channels: 2000, shared: 5}.run(t, p)
	base := rssOf(t, pid)

	stop := rssSampler(t, pid)
	start := time.Now()
	rssLoad{conns: 2000, channels: 20000, shared: 20}.run(t, p)
	peak := stop()
	loadTook := time.Since(start)

	bound := base + base/10 + 16<<20
	var after int64
	start = time.Now()
	for {
		after = rssOf(t, pid)
		if after <= bound || time.Since(start) > 240*time.Second {
			break
		}
		select {
		case <-time.After(time.Second):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	t.Logf("RSS %.1f MB after the warm-up, %.1f MB at the peak of the load (%v), %.1f MB %v after it ended; bound %.1f MB",
		float64(base)/1e6, float64(peak)/1e6, loadTook.Round(time.Second), float64(after)/1e6, time.Since(start).Round(time.Second), float64(bound)/1e6)
	if peak < base+100<<20 {
		t.Errorf("the load took RSS only from %d to %d bytes; want a load that shows something", base, peak)
	}
	t.Logf("the server's Go heap now: %s", metricLines(p, "go_memstats_heap_"))
	if after > bound {
		t.Fatalf("RSS %d bytes 240 s after the load; want at most %d (base %d)", after, bound, base)
	}
}
