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
	"strings"
	"syscall"
	"time"

	tbench "github.com/tether-run/tether/internal/bench"
)

// bench runs the load harness (internal/bench): tether, run as a separate
// process from this same binary unless --tether-bin says otherwise,
// side by side with its peers.
func bench(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("tether bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scale := fs.String("scale", "full", "preset: tiny, small or full")
	scenarios := fs.String("scenarios", strings.Join(tbench.Scenarios, ","), "comma-separated scenarios to run")
	systems := fs.String("systems", "tether,nchan,socketio", "comma-separated systems: tether, nchan, socketio")
	out := fs.String("out", "bench-out", "`directory` for results.json and the PNG plots")
	bin := fs.String("tether-bin", "", "tether binary to measure (default: this binary)")
	repo := fs.String("repo", ".", "repository root (scripts/peers, bench/peers)")
	install := fs.Bool("install-peers", false, "run scripts/peers/*.sh install first (apt-get and npm; root for apt-get)")
	repeat := fs.Int("repeat", 0, "runs of each case, systems interleaved; medians are reported (0: the preset's)")
	idleN := fs.Int("idle-conns", 0, "connections per transport in the idle scenario (0: the preset's)")
	report := fs.String("markdown", "", "print the Markdown tables of an earlier run's results.json `file`, and exit")
	replot := fs.Bool("replot", false, "with --markdown: also redraw the plots beside the file")
	tflags := fs.String("tether-flags", "", "extra flags for tether serve, space-separated (default: none, tether's defaults)")
	silent := fs.Duration("silent-timeout", 0, "longest wait for a server to notice a silent peer (0: the preset's)")
	engine := fs.String("tether-engine", "pebble", "tether's store: pebble (embedded) or nats (JetStream: a fresh single-node nats-server per case, built from the pinned module unless --nats-bin)")
	natsBin := fs.String("nats-bin", "", "nats-server binary for --tether-engine nats (default: go build it)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if *report != "" {
		b, err := os.ReadFile(*report)
		if err != nil {
			return err
		}
		var rep tbench.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("bench: %s: %w", *report, err)
		}
		fmt.Print(tbench.Markdown(&rep))
		if *replot {
			return tbench.WritePlots(filepath.Dir(*report), &rep)
		}
		return nil
	}
	cfg, err := tbench.Preset(*scale)
	if err != nil {
		return err
	}
	cfg.Scenarios = strings.Split(*scenarios, ",")
	cfg.Systems = nil
	for _, s := range strings.Split(*systems, ",") {
		cfg.Systems = append(cfg.Systems, tbench.System(strings.TrimSpace(s)))
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
	cfg.TetherArgs = strings.Fields(*tflags)
	switch cfg.Engine = *engine; *engine {
	case "pebble":
	case "nats":
		cfg.NATSBin = *natsBin
		if cfg.NATSBin == "" {
			dir, err := os.MkdirTemp("", "tether-bench-nats-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if cfg.NATSBin, err = tbench.BuildNATS(*repo, dir); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("--tether-engine %q: want pebble or nats", *engine)
	}
	cfg.Out, cfg.Stdout, cfg.Stderr = *out, os.Stdout, stderr
	if cfg.RepoDir, err = filepath.Abs(*repo); err != nil {
		return err
	}
	if cfg.TetherBin = *bin; cfg.TetherBin == "" {
		if cfg.TetherBin, err = os.Executable(); err != nil {
			return fmt.Errorf("bench: cannot find this binary: %w", err)
		}
	}
	if *install {
		for _, s := range cfg.Systems {
			if s == tbench.Tether {
				continue
			}
			script := filepath.Join(cfg.RepoDir, "scripts/peers", peerScript(s))
			cmd := exec.Command(script, "install")
			cmd.Stdout, cmd.Stderr = stderr, stderr
			fmt.Fprintf(stderr, "bench: %s install\n", script)
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("bench: %s install: %w", script, err)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	_, err = tbench.Run(ctx, cfg)
	fmt.Fprintf(stderr, "bench: done in %s\n", time.Since(start).Round(time.Second))
	return err
}

// peerScript names the install script of a peer.
func peerScript(s tbench.System) string {
	if s == tbench.SocketIO {
		return "socketio.sh"
	}
	return string(s) + ".sh"
}
