package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tbench "github.com/tether-run/tether/internal/bench"
)

// The harness lives in its own command so that the server links none of
// its plotting stack (gonum.org/v1/plot and what it pulls in).
func TestServerLinksNoPlotting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../tether").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ../tether: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "gonum.org/") || strings.HasSuffix(p, "/internal/bench") {
			t.Errorf("cmd/tether links %s", p)
		}
	}
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	cfg, o, err := parseFlags([]string{"--scale", "tiny", "--systems", "tether, nchan", "--scenarios", "idle,fanout",
		"--repeat", "2", "--idle-conns", "7", "--silent-timeout", "3s", "--tether-flags", "--max-lag 1s",
		"--tether-bin", "/bin/true", "--out", "o", "--transports", "websocket,sse", "--publishers", "64,8",
		"--detect-modes", "rst"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := tbench.Config{Systems: []tbench.System{tbench.Tether, tbench.Nchan}, Scenarios: []string{"idle", "fanout"},
		Repeat: 2, IdleConns: 7, SilentTimeout: 3 * time.Second, TetherArgs: []string{"--max-lag", "1s"},
		TetherBin: "/bin/true", Out: "o", Engine: "pebble"}
	if !slices.Equal(cfg.Systems, want.Systems) || !slices.Equal(cfg.Scenarios, want.Scenarios) ||
		cfg.Repeat != want.Repeat || cfg.IdleConns != want.IdleConns || cfg.SilentTimeout != want.SilentTimeout ||
		!slices.Equal(cfg.TetherArgs, want.TetherArgs) || cfg.TetherBin != want.TetherBin || cfg.Out != want.Out ||
		cfg.Engine != want.Engine || !slices.Equal(cfg.IdleTransports, []string{"websocket", "sse"}) ||
		!slices.Equal(cfg.FanoutTransports, cfg.IdleTransports) || !slices.Equal(cfg.PublishConcurrency, []int{64, 8}) ||
		!slices.Equal(cfg.DetectModes, []string{"rst"}) {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}
	if o.repo != "." || !filepath.IsAbs(cfg.RepoDir) {
		t.Errorf("repo %q, RepoDir %q; want . and an absolute path", o.repo, cfg.RepoDir)
	}
	cfg, _, err = parseFlags([]string{"--systems", "nchan,tether,socketio", "--tether-before", "/bin/true"}, &stderr)
	if want := []tbench.System{tbench.Nchan, tbench.Tether, tbench.TetherBefore, tbench.SocketIO}; err != nil ||
		!slices.Equal(cfg.Systems, want) || cfg.TetherBeforeBin != "/bin/true" {
		t.Errorf("--tether-before: systems %v, binary %q, %v; want %v and /bin/true", cfg.Systems, cfg.TetherBeforeBin, err, want)
	}
	cfg, _, err = parseFlags([]string{"--scale", "tiny", "--fanout-subs", "1000, 10000", "--fanout-rate", "100000",
		"--fanout-duration", "5s", "--fanout-flat", "500000", "--fanout-publishers", "32"}, &stderr)
	if err != nil || !slices.Equal(cfg.FanoutSubs, []int{1000, 10000}) || cfg.FanoutRate != 100000 || cfg.FanoutPublishers != 32 ||
		cfg.FanoutDuration != 5*time.Second || cfg.FanoutFlat != 500000 {
		t.Errorf("fan-out flags: subs %v, rate %d, duration %v, flat %d, %v; want [1000 10000], 100000, 5s, 500000",
			cfg.FanoutSubs, cfg.FanoutRate, cfg.FanoutDuration, cfg.FanoutFlat, err)
	}
	tiny, _ := tbench.Preset("tiny")
	if cfg, _, err = parseFlags([]string{"--scale", "tiny"}, &stderr); err != nil || !slices.Equal(cfg.FanoutSubs, tiny.FanoutSubs) ||
		cfg.FanoutRate != tiny.FanoutRate || cfg.FanoutDuration != tiny.FanoutDuration || cfg.FanoutFlat != tiny.FanoutFlat {
		t.Errorf("no fan-out flags: %v %d %v %d, %v; want the tiny preset's", cfg.FanoutSubs, cfg.FanoutRate, cfg.FanoutDuration, cfg.FanoutFlat, err)
	}
	for _, bad := range [][]string{{"--scale", "huge"}, {"--tether-engine", "sqlite"}, {"--publishers", "0"}, {"--fanout-subs", "10,x"},
		{"--fanout-subs", "-5"}, {"extra"}, {"--tether-before", "/nonexistent"}} {
		if _, _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("parseFlags(%q): no error", bad)
		}
	}
	if err := run([]string{"-h"}, &stderr, &stderr); err != nil {
		t.Errorf("-h: %v", err)
	}
}

// --markdown prints the tables of an earlier run without running anything.
func TestMarkdown(t *testing.T) {
	rep := tbench.Report{Results: []tbench.Result{
		{Scenario: "idle", Case: "websocket N=2", System: tbench.Tether, Metrics: map[string]float64{"rss_per_conn_bytes": 1000}},
		{Scenario: "idle", Case: "websocket N=2", System: tbench.Nchan, Metrics: map[string]float64{"rss_per_conn_bytes": 2000}},
	}}
	b, _ := json.Marshal(rep)
	file := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"--markdown", file}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"#### idle", "| case | metric | tether | nchan | tether/nchan |", "| websocket N=2 | server RSS per connection (B) | 1,000 | 2,000 | 0.5x (better) |"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, stdout.String())
		}
	}
}
