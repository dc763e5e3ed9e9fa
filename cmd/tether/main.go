// Command tether runs a tether server: durable channels over long-poll and
// Server-Sent Events that notice when a client is really gone.
//
//	tether serve [flags]
//
// Every flag has an environment variable: --addr is TETHER_ADDR, --data is
// TETHER_DATA, and so on (upper case, dashes as underscores, prefix TETHER_).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/cli"
	"github.com/tether-run/tether/server"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tether:", err)
		os.Exit(1)
	}
}

const usage = `usage: tether serve [flags]

Commands:
  serve   run the server (tether serve -h lists its flags)
  bench   run the load harness against tether and its peers (tether bench -h)
`

func run(args []string, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return nil
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "bench":
		return bench(args[1:], stderr)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func serve(args []string, stderr io.Writer) error {
	cfg, opts, err := parseServeFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Logger = cli.NewLogger(stderr, opts.logFormat, opts.logLevel)
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	sig := <-sigs
	cfg.Logger.Info("signal received; stopping (a second signal forces exit)", "signal", sig.String(), "grace", opts.grace)
	ctx, cancel := context.WithTimeout(context.Background(), opts.grace)
	defer cancel()
	go func() {
		<-sigs
		cfg.Logger.Warn("second signal: exiting now")
		os.Exit(2)
	}()
	if err := srv.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// serveOptions are the flags that are not server configuration.
type serveOptions struct {
	logFormat, logLevel string
	grace               time.Duration
}

func parseServeFlags(args []string, stderr io.Writer) (server.Config, serveOptions, error) {
	var cfg server.Config
	var opts serveOptions
	fs := flag.NewFlagSet("tether serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "`address` to listen on")
	fs.StringVar(&cfg.DataDir, "data", "tether-data", "`directory` for the embedded store")
	fs.StringVar(&cfg.NATS.URLs, "nats", "", "comma-separated NATS `URLs`: keep channels on a JetStream cluster instead of the embedded store (--data then holds nothing)")
	fs.StringVar(&cfg.NATS.Stream, "nats-stream", "TETHER", "JetStream stream holding the channels; every node of one service uses the same")
	fs.IntVar(&cfg.NATS.Replicas, "nats-replicas", 0, "servers holding each message before a publish is acknowledged (0: 3 on a JetStream cluster, else 1)")
	fs.DurationVar(&cfg.Retention.MaxAge, "retention-max-age", 0, "drop messages older than this (0 keeps them)")
	fs.IntVar(&cfg.Retention.MaxMessages, "retention-max-messages", 0, "keep at most this many messages per channel (0: no limit)")
	fs.DurationVar(&cfg.DedupWindow, "dedup-window", 10*time.Minute, "how long an Idempotency-Key is remembered")
	fs.DurationVar(&cfg.HTTP.DefaultWait, "wait-default", 25*time.Second, "long-poll wait when the request gives none")
	fs.DurationVar(&cfg.HTTP.MaxWait, "wait-max", 2*time.Minute, "longest long-poll wait a request may ask for")
	fs.Int64Var(&cfg.HTTP.MaxBodyBytes, "max-body", 1<<20, "largest published message, in `bytes`")
	fs.DurationVar(&cfg.HTTP.SSEHeartbeat, "sse-heartbeat", 15*time.Second, "interval of SSE comment heartbeats")
	fs.DurationVar(&cfg.Protocol.MaxLag, "sse-max-lag", 30*time.Second, "alias of --max-lag, which now applies to SSE too")
	fs.DurationVar(&cfg.KeepAlive.Idle, "tcp-keepalive-idle", 0, "idle time before TCP keepalive probes (0: default 2s)")
	fs.DurationVar(&cfg.KeepAlive.Interval, "tcp-keepalive-interval", 0, "interval between TCP keepalive probes (0: default 1s)")
	fs.IntVar(&cfg.KeepAlive.Count, "tcp-keepalive-count", 0, "unanswered probes before the peer is dead (0: default 4)")
	fs.DurationVar(&cfg.KeepAlive.UserTimeout, "tcp-user-timeout", 0, "TCP_USER_TIMEOUT: longest time sent data may stay unacknowledged (0: default 4s, negative: off)")
	fs.StringVar(&cfg.TCPAddr, "tcp-addr", "", "`address` for the framed protocol over plain TCP (empty: off)")
	fs.DurationVar(&cfg.Protocol.PingInterval, "heartbeat-interval", 5*time.Second, "WebSocket/TCP: how often the server pings")
	fs.DurationVar(&cfg.Protocol.PingTimeout, "heartbeat-timeout", 10*time.Second, "WebSocket/TCP: end a connection silent for this long (heartbeat-timeout)")
	fs.DurationVar(&cfg.Protocol.IdleTimeout, "idle-timeout", 0, "WebSocket/TCP: end a connection with no application data for this long (0: off)")
	fs.Func("idle-close-mode", "how an idle connection is closed: close, reset or discard (default reset)", func(v string) error {
		switch m := conn.CloseMode(v); m {
		case conn.CloseGraceful, conn.CloseReset, conn.CloseDiscard:
			cfg.Protocol.IdleCloseMode = m
			return nil
		}
		return fmt.Errorf("want close, reset or discard")
	})
	fs.IntVar(&cfg.Protocol.QueueBytes, "queue-bytes", 1<<20, "WebSocket/TCP: outgoing queue bound per connection and lane, in `bytes`")
	fs.DurationVar(&cfg.Protocol.MaxLag, "max-lag", 30*time.Second, "WebSocket/TCP: end a connection whose oldest undelivered message is this old (slow-consumer)")
	fs.IntVar(&cfg.Protocol.MaxFrameSize, "max-frame", 1<<20, "WebSocket/TCP: largest frame a client may send, in `bytes`")
	fs.IntVar(&cfg.Protocol.MaxInFlight, "max-in-flight", 64, "WebSocket/TCP: requests in flight per connection")
	fs.Func("ws-origin", "host `pattern` whose pages may open WebSockets cross-origin (repeatable; default same-origin only)", func(v string) error {
		cfg.WSOriginPatterns = append(cfg.WSOriginPatterns, v)
		return nil
	})
	fs.DurationVar(&cfg.Jobs.HeartbeatInterval, "job-heartbeat", time.Second, "jobs: how often workers renew their leases (expired leases are swept every half interval)")
	fs.IntVar(&cfg.Jobs.LeaseIntervals, "job-lease-intervals", 3, "jobs: a lease lasts this many heartbeat intervals")
	fs.DurationVar(&cfg.Jobs.CancelGrace, "job-cancel-grace", 5*time.Second, "jobs: how long a cancelled handler may run before its attempt is fenced and the job recorded canceled")
	fs.DurationVar(&cfg.Jobs.FollowGrace, "job-follow-grace", 10*time.Second, "jobs: how long an on_disconnect=cancel job outlives its last follower's departure")
	fs.DurationVar(&cfg.ShutdownSpread, "shutdown-spread", 5*time.Second, "window over which shutdown spreads clients' reconnects")
	fs.StringVar(&opts.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&opts.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&opts.grace, "shutdown-grace", 30*time.Second, "how long a stop waits for requests in flight")
	if err := applyEnv(fs); err != nil {
		return cfg, opts, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return cfg, opts, nil
}

// applyEnv sets every flag from its TETHER_ variable, if set. Flags given on
// the command line are parsed afterwards and win.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "TETHER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}
