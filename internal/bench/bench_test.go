package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tinyConfig is the "tiny" preset against the given systems and
// scenarios, writing into a temp dir.
func tinyConfig(t *testing.T, systems []System, scenarios ...string) Config {
	t.Helper()
	cfg, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TetherBin, cfg.RepoDir = tetherBin, repoDir
	cfg.Systems, cfg.Scenarios = systems, scenarios
	cfg.Out = t.TempDir()
	cfg.Stdout, cfg.Stderr = testWriter{t}, testWriter{t}
	return cfg
}

// testWriter sends the harness's tables and progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runTiny runs cfg and returns its results, failing on any error.
func runTiny(t *testing.T, cfg Config) []Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk Report
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(onDisk.Results) != len(rep.Results) {
		t.Fatalf("results.json has %d results, Run returned %d", len(onDisk.Results), len(rep.Results))
	}
	for _, re := range rep.Results {
		if re.Err != "" {
			t.Errorf("%s %s on %s: %s", re.Scenario, re.Case, re.System, re.Err)
		}
	}
	return rep.Results
}

// checkResult fails unless every want holds for re's metrics: a key with
// a positive want must be at least that, with 0 exactly 0.
func checkResult(t *testing.T, re Result, want map[string]float64) {
	t.Helper()
	if re.Skipped != "" {
		return
	}
	for k, w := range want {
		got, ok := re.Metrics[k]
		switch {
		case !ok:
			t.Errorf("%s %s on %s: no metric %s", re.Scenario, re.Case, re.System, k)
		case w == 0 && got != 0:
			t.Errorf("%s %s on %s: %s = %v, want 0", re.Scenario, re.Case, re.System, k, got)
		case w > 0 && got < w:
			t.Errorf("%s %s on %s: %s = %v, want at least %v", re.Scenario, re.Case, re.System, k, got, w)
		}
	}
}

// checkScenarios checks what each scenario must show, for any system.
func checkScenarios(t *testing.T, cfg Config, results []Result) {
	t.Helper()
	seen := map[string]bool{}
	for _, re := range results {
		seen[re.Scenario] = true
		switch re.Scenario {
		case "idle":
			checkResult(t, re, map[string]float64{"conns": float64(cfg.IdleConns), "dropped": 0, "rss_per_conn_bytes": -1})
		case "fanout":
			// Server CPU may read 0 in a tiny case (its grain is 10 ms);
			// the harness's own (getrusage, microseconds) cannot.
			checkResult(t, re, map[string]float64{"delivered_per_s": 1, "missed": 0, "repeated": 0, "p99_ms": -1,
				"server_cpu_s_per_m": -1, "server_cpu_cores": -1, "client_cpu_s": 1e-6, "client_cpu_cores": -1,
				"ended_by_server": 0, "ended_heartbeat": 0})
		case "publish":
			checkResult(t, re, map[string]float64{"appends_per_s": 1, "errors": 0, "p99_ms": -1})
		case "churn":
			checkResult(t, re, map[string]float64{"connects_per_s": 1, "missed": 0, "repeated": 0})
		case "detection":
			checkDetection(t, re)
		}
	}
	for _, sc := range cfg.Scenarios {
		if !seen[sc] {
			t.Errorf("no result for scenario %s", sc)
		}
	}
	for _, ps := range plots {
		if seen[ps.scenario] {
			if _, err := os.Stat(filepath.Join(cfg.Out, ps.file)); err != nil {
				t.Errorf("plot %s: %v", ps.file, err)
			}
		}
	}
}

// checkDetection: RST and FIN are noticed within a second (tether must
// name the reason), a silent peer within 10 s by tether.
func checkDetection(t *testing.T, re Result) {
	t.Helper()
	if re.Skipped != "" {
		t.Logf("detection %s on %s skipped: %s", re.Case, re.System, re.Skipped)
		return
	}
	secs, reason := re.Metrics["seconds"], re.Text["seconds"]
	limit := 1.0
	want := map[string]string{"rst": "reset", "fin": "closed", "silent": "timeout"}[re.Case]
	if re.Case == "silent" {
		limit = 10
		if !re.System.IsTether() {
			return // the peers may not notice at all with their defaults
		}
	}
	if secs < 0 || secs > limit {
		t.Errorf("detection %s on %s: %v s (%s), want within %v s", re.Case, re.System, secs, reason, limit)
	}
	if re.System.IsTether() && reason != want {
		t.Errorf("detection %s on tether: reason %q, want %q", re.Case, reason, want)
	}
}

// TestScenariosTether runs every scenario at the tiny scale against tether:
// the harness must keep working as the server changes.
func TestScenariosTether(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(t, []System{Tether}, Scenarios...)
	checkScenarios(t, cfg, runTiny(t, cfg))
}

// TestScenariosPeers runs the scenarios against Nchan, socket.io and Centrifugo when
// they are installed (scripts/peers/*.sh install), all but the silent
// drop, which the peers' defaults do not notice within the test's time.
func TestScenariosPeers(t *testing.T) {
	t.Parallel()
	for _, sys := range []System{Nchan, SocketIO, Centrifugo} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			if why := peerMissing(repoDir, sys); why != "" {
				t.Skipf("%s: %s", sys, why)
			}
			cfg := tinyConfig(t, []System{sys}, Scenarios...)
			cfg.IdleTransports = []string{"websocket"}
			cfg.DetectModes = []string{"rst", "fin"}
			checkScenarios(t, cfg, runTiny(t, cfg))
		})
	}
}

// TestFanoutPublishers: with several concurrent publishers each
// subscriber checks each publisher's order, and still has every message
// once.
func TestFanoutPublishers(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(t, []System{Tether}, "fanout")
	cfg.FanoutTransports, cfg.FanoutPublishers = []string{"websocket"}, 4
	results := runTiny(t, cfg)
	checkScenarios(t, cfg, results)
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for _, re := range results {
		if !strings.HasSuffix(re.Case, " P=4") {
			t.Errorf("case %q does not say P=4", re.Case)
		}
		if want := float64(cfg.FanoutSubs[0]) * float64(cfg.FanoutFlat/cfg.FanoutSubs[0]); strings.Contains(re.Case, "flat-out") && re.Metrics["deliveries"] != want {
			t.Errorf("%s: %v deliveries, want %v", re.Case, re.Metrics["deliveries"], want)
		}
	}
}

// TestBeforeAfter runs a second tether binary as the system tether-before
// in the same run (here the same binary: the harness is what is tested),
// on every transport of the idle and fan-out scenarios: each case has a
// figure for both, and the tables give tether's ratio to tether-before.
func TestBeforeAfter(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(t, []System{Tether, TetherBefore}, "idle", "fanout")
	cfg.TetherBeforeBin = tetherBin
	results := runTiny(t, cfg)
	checkScenarios(t, cfg, results)
	cases := map[string]map[System]bool{}
	for _, re := range results {
		if re.Skipped != "" {
			t.Errorf("%s %s on %s skipped: %s", re.Scenario, re.Case, re.System, re.Skipped)
		}
		if cases[re.Case] == nil {
			cases[re.Case] = map[System]bool{}
		}
		cases[re.Case][re.System] = true
	}
	if want := len(Transports) * (1 + 2*len(cfg.FanoutSubs)); len(cases) != want {
		t.Errorf("%d cases; want %d (idle and fan-out on each of %v)", len(cases), want, Transports)
	}
	for c, systems := range cases {
		if !systems[Tether] || !systems[TetherBefore] {
			t.Errorf("case %s ran on %v; want tether and tether-before", c, systems)
		}
	}
	for _, sc := range []string{"idle", "fanout"} {
		var rs []Result
		for _, re := range results {
			if re.Scenario == sc {
				rs = append(rs, re)
			}
		}
		if md := MarkdownTable(sc, rs); !strings.Contains(md, "| tether | tether-before | tether/tether-before |") {
			t.Errorf("%s table lacks the tether/tether-before ratio:\n%s", sc, md)
		}
	}
	cfg.TetherBeforeBin = ""
	if _, err := Run(t.Context(), cfg); err == nil {
		t.Error("Run with tether-before and no TetherBeforeBin: no error")
	}
}
