// Command tether-bench runs tether's load harness (package internal/bench):
// real connections on loopback against a tether server and its peers
// (Nchan, socket.io), each a separate process, with the figures side by
// side and their ratios.
//
//	go run ./cmd/tether-bench --scale tiny
//	go run ./cmd/tether-bench --install-peers --scale full --repeat 3 --out docs/bench
//	go run ./cmd/tether-bench --markdown docs/bench/results.json
//
// Fan-out as issue 14 measures it: 1,000 and 10,000 subscribers (the full
// preset's), paced (100,000 deliveries/s offered for 10 s) and flat out
// (2,000,000 deliveries), 32 concurrent publishers, beside Centrifugo and
// Nchan; each case reports the server's CPU per million deliveries, the
// harness's own CPU, and the connections the server ended (by heartbeat
// among them):
//
//	go run ./cmd/tether-bench --scale full --systems tether,centrifugo,nchan --scenarios fanout \
//	  --transports websocket --fanout-publishers 32 --repeat 3
//
// --fanout-subs, --fanout-rate, --fanout-duration and --fanout-flat
// change those sizes.
//
// It is its own command so that the tether server binary links none of
// the harness's plotting stack. The tether binary it measures is
// --tether-bin, or else one built from --repo (go build ./cmd/tether) into
// a temporary directory. --tether-before runs a second tether binary as
// one more system, "tether-before", so that two builds of the server are
// compared in the same run, case by case, interleaved:
//
//	git worktree add /tmp/tether-base BASE && (cd /tmp/tether-base && go build -o /tmp/tether-before ./cmd/tether)
//	go run ./cmd/tether-bench --systems tether --tether-before /tmp/tether-before --scenarios idle,fanout
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	tbench "github.com/tether-run/tether/internal/bench"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tether-bench:", err)
		os.Exit(1)
	}
}

// options are the flags that are not harness configuration.
type options struct {
	repo     string
	bin      string
	natsBin  string
	install  bool
	markdown string
	replot   bool
}

// parseFlags reads the command line into the harness's configuration and
// the command's own options. Binaries still to be built (tether when
// --tether-bin is empty, nats-server when --nats-bin is) are left empty.
func parseFlags(args []string, stderr io.Writer) (tbench.Config, options, error) {
	var o options
	fs := flag.NewFlagSet("tether-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scale := fs.String("scale", "full", "preset: tiny, small or full")
	scenarios := fs.String("scenarios", strings.Join(tbench.Scenarios, ","), "comma-separated scenarios to run")
	systems := fs.String("systems", "tether,centrifugo,nchan,socketio", "comma-separated systems: tether, centrifugo, nchan, socketio (tether-before: see --tether-before)")
	out := fs.String("out", "bench-out", "`directory` for results.json and the PNG plots")
	fs.StringVar(&o.bin, "tether-bin", "", "tether binary to measure (default: go build ./cmd/tether from --repo)")
	before := fs.String("tether-before", "", "a second tether `binary`, measured as the system tether-before in the same run, right after tether (for example one built from the base commit)")
	fs.StringVar(&o.repo, "repo", ".", "repository root (scripts/peers, bench/peers, cmd/tether)")
	fs.BoolVar(&o.install, "install-peers", false, "run scripts/peers/*.sh install first (apt-get and npm; root for apt-get)")
	repeat := fs.Int("repeat", 0, "runs of each case, systems interleaved; medians are reported (0: the preset's)")
	idleN := fs.Int("idle-conns", 0, "connections per transport in the idle scenario (0: the preset's)")
	fs.StringVar(&o.markdown, "markdown", "", "print the Markdown tables of an earlier run's results.json `file`, and exit")
	fs.BoolVar(&o.replot, "replot", false, "with --markdown: also redraw the plots beside the file")
	tflags := fs.String("tether-flags", "", "extra flags for tether serve, space-separated, for tether and tether-before alike (default: none, tether's defaults)")
	transports := fs.String("transports", "", "comma-separated transports of the idle and fan-out scenarios: websocket, tcp, sse, long-poll (default: all)")
	publishers := fs.String("publishers", "", "comma-separated publisher counts of the publish scenario (default: the preset's)")
	fanoutSubs := fs.String("fanout-subs", "", "comma-separated subscriber counts of the fan-out cases, for example 1000,10000 (default: the preset's)")
	fanoutRate := fs.Int("fanout-rate", 0, "fan-out paced phase: deliveries/s offered, the publish rate being this over the subscribers (0: the preset's)")
	fanoutDur := fs.Duration("fanout-duration", 0, "fan-out paced phase: how long it publishes (0: the preset's)")
	fanoutFlat := fs.Int("fanout-flat", 0, "fan-out flat-out phase: deliveries in all, published back to back as this over the subscribers messages (0: the preset's)")
	fanoutPubs := fs.Int("fanout-publishers", 0, "fan-out: concurrent publishers, each waiting for its acknowledgement before its next (0: the preset's, one)")
	detect := fs.String("detect-modes", "", "comma-separated departures of the detection scenario: rst, fin, silent (default: all)")
	silent := fs.Duration("silent-timeout", 0, "longest wait for a server to notice a silent peer (0: the preset's)")
	engine := fs.String("tether-engine", "pebble", "tether's store: pebble (embedded) or nats (JetStream: a fresh single-node nats-server per case, built from the pinned module unless --nats-bin)")
	fs.StringVar(&o.natsBin, "nats-bin", "", "nats-server binary for --tether-engine nats (default: go build it)")
	if err := fs.Parse(args); err != nil {
		return tbench.Config{}, o, err
	}
	if fs.NArg() > 0 {
		return tbench.Config{}, o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.markdown != "" {
		return tbench.Config{}, o, nil
	}
	cfg, err := tbench.Preset(*scale)
	if err != nil {
		return cfg, o, err
	}
	cfg.Scenarios = strings.Split(*scenarios, ",")
	cfg.Systems = nil
	for _, s := range strings.Split(*systems, ",") {
		cfg.Systems = append(cfg.Systems, tbench.System(strings.TrimSpace(s)))
	}
	if *before != "" {
		if cfg.TetherBeforeBin, err = filepath.Abs(*before); err != nil {
			return cfg, o, err
		}
		if _, err := os.Stat(cfg.TetherBeforeBin); err != nil {
			return cfg, o, fmt.Errorf("--tether-before: %w", err)
		}
		cfg.Systems = withBefore(cfg.Systems)
	}
	if *repeat > 0 {
		cfg.Repeat = *repeat
	}
	if *idleN > 0 {
		cfg.IdleConns = *idleN
	}
	if *silent > 0 {
		cfg.SilentTimeout = *silent
	}
	if *transports != "" {
		cfg.IdleTransports = strings.Split(*transports, ",")
		cfg.FanoutTransports = cfg.IdleTransports
	}
	if *detect != "" {
		cfg.DetectModes = strings.Split(*detect, ",")
	}
	if *fanoutSubs != "" {
		if cfg.FanoutSubs, err = positiveInts(*fanoutSubs); err != nil {
			return cfg, o, fmt.Errorf("--fanout-subs: %w", err)
		}
	}
	if *fanoutRate > 0 {
		cfg.FanoutRate = *fanoutRate
	}
	if *fanoutDur > 0 {
		cfg.FanoutDuration = *fanoutDur
	}
	if *fanoutFlat > 0 {
		cfg.FanoutFlat = *fanoutFlat
	}
	if *fanoutPubs > 0 {
		cfg.FanoutPublishers = *fanoutPubs
	}
	if *publishers != "" {
		if cfg.PublishConcurrency, err = positiveInts(*publishers); err != nil {
			return cfg, o, fmt.Errorf("--publishers: %w", err)
		}
	}
	cfg.TetherArgs = strings.Fields(*tflags)
	switch cfg.Engine = *engine; *engine {
	case "pebble", "nats":
	default:
		return cfg, o, fmt.Errorf("--tether-engine %q: want pebble or nats", *engine)
	}
	cfg.Out = *out
	if cfg.RepoDir, err = filepath.Abs(o.repo); err != nil {
		return cfg, o, err
	}
	cfg.TetherBin = o.bin
	return cfg, o, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.markdown != "" {
		return markdown(stdout, o.markdown, o.replot)
	}
	cfg.Stdout, cfg.Stderr = stdout, stderr
	if cfg.TetherBin == "" || (cfg.Engine == "nats" && o.natsBin == "") {
		dir, err := os.MkdirTemp("", "tether-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if cfg.TetherBin == "" {
			fmt.Fprintf(stderr, "tether-bench: go build ./cmd/tether in %s\n", cfg.RepoDir)
			if cfg.TetherBin, err = tbench.BuildTether(cfg.RepoDir, dir); err != nil {
				return err
			}
		}
		if cfg.Engine == "nats" && o.natsBin == "" {
			if o.natsBin, err = tbench.BuildNATS(cfg.RepoDir, dir); err != nil {
				return err
			}
		}
	}
	if cfg.Engine == "nats" {
		cfg.NATSBin = o.natsBin
	}
	if o.install {
		if err := installPeers(cfg, stderr); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	_, err = tbench.Run(ctx, cfg)
	fmt.Fprintf(stderr, "tether-bench: done in %s\n", time.Since(start).Round(time.Second))
	return err
}

// markdown prints the tables of an earlier run, and redraws its plots if
// replot is set.
func markdown(stdout io.Writer, file string, replot bool) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var rep tbench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	fmt.Fprint(stdout, tbench.Markdown(&rep))
	if replot {
		return tbench.WritePlots(filepath.Dir(file), &rep)
	}
	return nil
}

// installPeers runs the install script of every peer in cfg.Systems.
func installPeers(cfg tbench.Config, stderr io.Writer) error {
	for _, s := range cfg.Systems {
		if s.IsTether() {
			continue
		}
		script := filepath.Join(cfg.RepoDir, "scripts/peers", peerScript(s))
		cmd := exec.Command(script, "install")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		fmt.Fprintf(stderr, "tether-bench: %s install\n", script)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s install: %w", script, err)
		}
	}
	return nil
}

// withBefore puts TetherBefore right after Tether in systems (first when
// Tether is not there), so that the tables set the two side by side.
func withBefore(systems []tbench.System) []tbench.System {
	systems = slices.DeleteFunc(slices.Clone(systems), func(s tbench.System) bool { return s == tbench.TetherBefore })
	i := slices.Index(systems, tbench.Tether) + 1
	return slices.Insert(systems, i, tbench.TetherBefore)
}

// peerScript names the install script of a peer.
func peerScript(s tbench.System) string {
	if s == tbench.SocketIO {
		return "socketio.sh"
	}
	return string(s) + ".sh"
}

// positiveInts parses a comma-separated list of positive integers.
func positiveInts(list string) ([]int, error) {
	var ns []int
	for _, p := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers", list)
		}
		ns = append(ns, n)
	}
	return ns, nil
}
