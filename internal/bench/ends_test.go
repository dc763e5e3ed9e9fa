package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

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

// Centrifugo ends a client that does not answer its pings with close code
// 3012, which the client reads as heartbeatReason(Centrifugo). Its config
// here is the harness's with the pings 1 s apart, so that the test takes
// seconds, not its default 33.
func TestCentrifugoHeartbeatEnd(t *testing.T) {
	t.Parallel()
	if why := peerMissing(repoDir, Centrifugo); why != "" {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var conf map[string]any
	b, err := os.ReadFile(filepath.Join(repoDir, "bench/peers/centrifugo/config.json"))
	if err == nil {
		err = json.Unmarshal(b, &conf)
	}
	client, ok := conf["client"].(map[string]any)
	if err != nil || !ok {
		t.Fatalf("bench/peers/centrifugo/config.json: %v (client section: %v)", err, ok)
	}
	client["ping_interval"], client["pong_timeout"] = "1s", "500ms"
	dir := t.TempDir()
	if b, err = json.Marshal(conf); err == nil {
		err = os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := centrifugoBin()
	port, err := freePort("", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "config.json"), "--http_server.address", "127.0.0.1",
		"--http_server.port", strconv.Itoa(port))
	stop, err := startProcess(cmd, false, func([]byte, time.Time) {})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	in := &instance{sys: Centrifugo, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), admin: adminClient(loopback), pid: cmd.Process.Pid}
	defer in.admin.CloseIdleConnections()
	if err := in.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := dialWS(ctx, Centrifugo, in.addr, "c", &dialer{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeNow()
	s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var end error
	for end == nil {
		_, end = s.read() // its {} pings unanswered
	}
	if got, want := clientEnd(end), heartbeatReason(Centrifugo); got != want {
		t.Errorf("the client saw %q (%v); want %q", got, end, want)
	}
}

// Connections tether ends mid-case are counted by the clients and by
// tether's reasons, and do not hold the case until its deadline: here two
// subscribers of each case are kicked through tether's connections API
// just before the first publish.
func TestFanoutServerEnds(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(t, []System{Tether}, "fanout")
	cfg.FanoutTransports = []string{"websocket"}
	cfg.fanoutStarted = func(ctx context.Context, in *instance) error {
		s, err := in.getText(ctx, "/v1/connections")
		if err != nil {
			return err
		}
		var list struct{ Connections []struct{ ID string } }
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return err
		}
		if len(list.Connections) < 2 {
			return fmt.Errorf("%d connections listed, want at least 2", len(list.Connections))
		}
		for _, c := range list.Connections[:2] {
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+in.addr+"/v1/connections/"+c.ID+"/close", nil)
			res, err := in.admin.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				return fmt.Errorf("close %s: %s", c.ID, res.Status)
			}
		}
		// Both ends are the server's to count before the window opens.
		_, err = in.waitConnections(ctx, len(list.Connections)-2, true, 20*time.Second)
		return err
	}
	results := runTiny(t, cfg)
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for _, re := range results {
		m := re.Metrics
		if m["ended_by_server"] != 2 || m["ended_by_server_says"] != 2 || !strings.Contains(re.Text["ended_by_server_says"], "kicked 2") ||
			m["ended_heartbeat"] != 0 {
			t.Errorf("%s: ended by the server %v (%q), by its reasons %v (%q), by heartbeat %v; want 2, 2 (kicked 2), 0",
				re.Case, m["ended_by_server"], re.Text["ended_by_server"], m["ended_by_server_says"], re.Text["ended_by_server_says"], m["ended_heartbeat"])
		}
		if m["window_s"] > 30 {
			t.Errorf("%s: the window lasted %v s: the ended subscribers held it", re.Case, m["window_s"])
		}
		if m["deliveries"] < 1 {
			t.Errorf("%s: no deliveries to the subscribers left", re.Case)
		}
	}
}
