package bench

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the
	// last ')'. utime 250 and stime 50 ticks: 3 s.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 9 20 0 12 0 100 1000 10 18446744073709551615\n"
	if d, ok := parseStatCPU([]byte(line)); !ok || d != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s, true", d, ok)
	}
	for _, bad := range []string{"", "12 (x) S 1 2", "12 x S 1 2 3 4 5 6 7 8 9 10 11 12 13"} {
		if d, ok := parseStatCPU([]byte(bad)); ok {
			t.Errorf("parseStatCPU(%q) = %v, true; want false", bad, d)
		}
	}
}

// The CPU /proc/<pid>/stat gives for this process must match what
// getrusage says, within the stat file's 10 ms grain and the time between
// the two reads.
func TestPidCPU(t *testing.T) {
	burn := func(d time.Duration) {
		end := selfCPU() + d
		deadline := time.Now().Add(30 * time.Second)
		x := 0
		for selfCPU() < end && time.Now().Before(deadline) {
			for i := range 100000 {
				x += i
			}
		}
		_ = x
	}
	stat0, ok := pidCPU(os.Getpid())
	self0 := selfCPU()
	if !ok {
		t.Fatal("no /proc/self stat")
	}
	burn(300 * time.Millisecond)
	stat1, _ := pidCPU(os.Getpid())
	self1 := selfCPU()
	ds, dr := stat1-stat0, self1-self0
	if dr < 300*time.Millisecond {
		t.Fatalf("getrusage moved %v after burning 300ms", dr)
	}
	if diff := (ds - dr).Abs(); diff > 50*time.Millisecond {
		t.Errorf("/proc/<pid>/stat says %v, getrusage %v: %v apart", ds, dr, diff)
	}
	if _, ok := pidCPU(1 << 30); ok {
		t.Error("pidCPU of a pid that cannot exist: ok")
	}
}

func TestCPUSampleSince(t *testing.T) {
	a := cpuSample{pids: map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: time.Second}}
	// pid 3 ended (not counted), pid 4 started (counted whole).
	b := cpuSample{pids: map[int]time.Duration{1: 1500 * time.Millisecond, 2: 2 * time.Second, 4: 300 * time.Millisecond}}
	if got := b.since(a); got != 800*time.Millisecond {
		t.Errorf("since = %v, want 800ms", got)
	}
}

func TestParseClose(t *testing.T) {
	e := parseClose(append([]byte{0x0b, 0xc4}, "no pong"...))
	if e.code != 3012 || e.reason != "no pong" || !errors.Is(e, io.EOF) || clientEnd(e) != "3012 no pong" {
		t.Errorf("parseClose = %+v (%q); want 3012 no pong, io.EOF", e, clientEnd(e))
	}
	if e := parseClose(nil); e.code != 0 || clientEnd(e) != "0" {
		t.Errorf("empty close: %+v, %q", e, clientEnd(e))
	}
	if e := parseClose([]byte{0x03, 0xe8, 0xff, 'x'}); e.reason != "?x" {
		t.Errorf("invalid UTF-8 reason: %q, want %q", e.reason, "?x")
	}
}

func TestMetricByLabel(t *testing.T) {
	text := `# HELP tether_connection_ends_total Connections ended.
# TYPE tether_connection_ends_total counter
tether_connection_ends_total{reason="heartbeat-timeout",transport="ws"} 3
tether_connection_ends_total{reason="heartbeat-timeout",transport="tcp"} 2
tether_connection_ends_total{transport="sse",reason="closed"} 7
tether_connection_ends_total_other{reason="closed"} 100
tether_connections_open{transport="ws"} 9
`
	m, found := metricByLabel(text, "tether_connection_ends_total", "reason")
	if want := map[string]int{"heartbeat-timeout": 5, "closed": 7}; !found || !maps.Equal(m, want) {
		t.Errorf("metricByLabel = %v, %v; want %v, true", m, found, want)
	}
	if _, found := metricByLabel("go_goroutines 5\n", "tether_connection_ends_total", "reason"); found {
		t.Error("a metric that is not exposed: found")
	}
	d := diffEnds(map[string]int{"closed": 7, "reset": 1}, map[string]int{"closed": 9, "reset": 1, "heartbeat-timeout": 4})
	if want := map[string]int{"closed": 2, "heartbeat-timeout": 4}; !maps.Equal(d, want) {
		t.Errorf("diffEnds = %v, want %v", d, want)
	}
	if s := formatEnds(d); s != "heartbeat-timeout 4, closed 2" {
		t.Errorf("formatEnds = %q", s)
	}
}

// A subscriber that never answers tether's pings is ended by heartbeat:
// the server's count by reason moves by one, and the client sees the
// server end it (not its own deadline).
func TestServerEndsHeartbeat(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := tinyConfig(t, []System{Tether}, "fanout")
	cfg.TetherArgs = []string{"--heartbeat-interval", "100ms", "--heartbeat-timeout", "500ms", "--heartbeat-busy-timeout", "-1s"}
	in, err := startSystem(ctx, &cfg, Tether, loopback, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer in.stop()
	before, ok, err := in.serverEnds(ctx)
	if err != nil || !ok {
		t.Fatalf("serverEnds: %v, %v", ok, err)
	}
	s, err := dialWS(ctx, Tether, in.addr, "c", &dialer{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeNow()
	// Read without answering: s.read, unlike s.next, leaves tether's
	// pings unanswered.
	s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var end error
	for end == nil {
		_, end = s.read()
	}
	if why := clientEnd(end); why == "" || errors.Is(end, os.ErrDeadlineExceeded) {
		t.Fatalf("the client's read ended with %v (%q); want the server to end it", end, why)
	}
	t.Logf("the client saw: %s", clientEnd(end))
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, _, err := in.serverEnds(ctx)
		d := diffEnds(before, after)
		if err == nil && d[heartbeatReason(Tether)] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tether's ends moved by %v (%v); want %s 1", d, err, heartbeatReason(Tether))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
