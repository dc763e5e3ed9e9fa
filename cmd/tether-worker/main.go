package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tether-run/tether/internal/cli"
	"github.com/tether-run/tether/worker"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tether-worker:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("tether-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "ws://127.0.0.1:8080/v1/ws", "tether server: ws://host:port[/v1/ws] or tcp://host:port")
	id := fs.String("id", "", "worker id (default hostname-pid)")
	token := fs.String("token", os.Getenv("TETHER_TOKEN"), "token for a server with access control (default $TETHER_TOKEN); its tether.worker must list the types")
	concurrency := fs.Int("concurrency", 1, "jobs run at once")
	types := fs.String("types", "noop,sleep,ignore-cancel", "comma-separated job types to take: noop, sleep, ignore-cancel")
	heartbeat := fs.Duration("heartbeat-interval", time.Second, "lease renewal interval (the server's job heartbeat interval or less)")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "how long running jobs may finish at shutdown before they are handed back")
	effects := fs.String("effects-log", "", "append one line per handler invocation to this `file`")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := cli.NewLogger(stderr, *logFormat, *logLevel)
	w, err := worker.New(worker.Config{
		URL: *url, Token: *token, ID: *id, Concurrency: *concurrency,
		HeartbeatInterval: *heartbeat, ShutdownGrace: *grace, Logger: log,
	})
	if err != nil {
		return err
	}
	var eff *effectsLog
	if *effects != "" {
		f, err := os.OpenFile(*effects, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		eff = &effectsLog{f: f, pid: os.Getpid()}
	}
	for _, t := range strings.Split(*types, ",") {
		h, ok := handlers[strings.TrimSpace(t)]
		if !ok {
			return fmt.Errorf("unknown job type %q (want noop, sleep or ignore-cancel)", t)
		}
		w.Handle(strings.TrimSpace(t), eff.wrap(h))
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		log.Info("signal received; shutting down (a second signal exits at once)", "signal", s.String())
		stop()
		<-sigs
		os.Exit(2)
	}()
	log.Info("worker starting", "pid", os.Getpid(), "url", *url, "types", *types)
	return w.Run(ctx)
}

var handlers = map[string]worker.Handler{
	"noop": func(context.Context, *worker.Job) (any, error) {
		return map[string]bool{"ok": true}, nil
	},
	"sleep": func(ctx context.Context, job *worker.Job) (any, error) {
		var p struct{ Progress bool }
		json.Unmarshal(job.Payload, &p)
		if p.Progress {
			// Tells a client that the handler runs: cancelling then
			// measures the way to this ctx (client/e2e_test.go).
			if err := job.Progress(ctx, map[string]bool{"started": true}); err != nil {
				return nil, err
			}
		}
		t := time.NewTimer(sleepFor(job))
		defer t.Stop()
		select {
		case <-t.C:
			return map[string]any{"slept_ms": sleepFor(job).Milliseconds()}, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	},
	"ignore-cancel": func(_ context.Context, job *worker.Job) (any, error) {
		time.Sleep(sleepFor(job)) // on purpose: this handler ignores its context
		return map[string]any{"slept_ms": sleepFor(job).Milliseconds()}, nil
	},
}

// sleepFor reads {"ms":N} from the payload; anything else sleeps 0.
func sleepFor(job *worker.Job) time.Duration {
	var p struct{ MS int64 }
	json.Unmarshal(job.Payload, &p)
	return time.Duration(max(p.MS, 0)) * time.Millisecond
}

// effectsLog appends one line per handler invocation. Each line is one
// write(2) on an O_APPEND file, so lines of concurrent handlers and of
// other processes do not interleave.
type effectsLog struct {
	f   *os.File
	pid int
	mu  sync.Mutex
}

// wrap runs h, then (when the log is on) appends its line, before the
// worker reports the outcome.
func (e *effectsLog) wrap(h worker.Handler) worker.Handler {
	if e == nil {
		return h
	}
	return func(ctx context.Context, job *worker.Job) (any, error) {
		start := time.Now()
		res, err := h(ctx, job)
		end := time.Now()
		line := fmt.Sprintf("%s %d %d %d %d\n", job.ID, job.Attempt, start.UnixNano(), end.UnixNano(), e.pid)
		e.mu.Lock()
		_, werr := e.f.WriteString(line)
		e.mu.Unlock()
		if werr != nil {
			return nil, fmt.Errorf("effects log: %w", werr)
		}
		return res, err
	}
}
