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

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/httpapi"
	"github.com/tether-run/tether/internal/cli"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/limits"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
)

func serve(args []string, stderr io.Writer) error {
	cfg, opts, err := parseServeFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := cli.NewLogger(stderr, opts.logFormat, opts.logLevel)
	if err := loadTokenFiles(&cfg, opts); err != nil {
		return err
	}
	node, err := tether.New(cfg, tether.WithLogger(logger))
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	if err := node.Start(context.Background()); err != nil {
		node.Shutdown(context.Background())
		return err
	}
	var sig os.Signal
	for sig == nil {
		select {
		case sig = <-sigs:
		case <-hups:
			if err := node.ReloadTLS(); err != nil {
				logger.Warn("SIGHUP: keeping the old TLS certificate", "err", err)
			} else if opts.tlsCert != "" {
				logger.Info("SIGHUP: TLS certificate reloaded", "cert", opts.tlsCert)
			}
		}
	}
	logger.Info("signal received; stopping (a second signal forces exit)", "signal", sig.String(), "grace", opts.grace)
	ctx, cancel := context.WithTimeout(context.Background(), opts.grace)
	defer cancel()
	go func() {
		<-sigs
		logger.Warn("second signal: exiting now")
		os.Exit(2)
	}()
	if err := node.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// serveOptions are the flags that are not server configuration, or name
// files the configuration is read from.
type serveOptions struct {
	logFormat, logLevel string
	grace               time.Duration
	secretFile          string
	keysFile            string
	tlsCert             string
	configFile          string
}

// loadTokenFiles reads --token-secret-file and --token-keys-file into
// cfg.Tokens.
func loadTokenFiles(cfg *tether.Config, opts serveOptions) error {
	if opts.secretFile != "" {
		secret, err := auth.LoadSecretFile(opts.secretFile)
		if err != nil {
			return fmt.Errorf("--token-secret-file: %w", err)
		}
		cfg.Tokens.Secret = secret
	}
	if opts.keysFile != "" {
		keys, err := auth.LoadKeysFile(opts.keysFile)
		if err != nil {
			return fmt.Errorf("--token-keys-file: %w", err)
		}
		cfg.Tokens.Keys = keys
	}
	return nil
}

// parseServeFlags makes the configuration of tether serve from its
// sources, each setting from the first that has it: the command line,
// the environment (TETHER_*), the --config file, the defaults. A setting
// takes its value from one source only: a list given on the command line
// replaces the environment's and the file's, it is not added to them.
func parseServeFlags(args []string, stderr io.Writer) (tether.Config, serveOptions, error) {
	var cfg tether.Config
	var opts serveOptions
	fs := serveFlags(&cfg, &opts)
	fs.SetOutput(stderr)
	onCmdLine, configFile, ok := probeArgs(args)
	if ok {
		if configFile == "" {
			configFile = os.Getenv(envName("config"))
		}
		if configFile != "" {
			settings, err := readConfigFile(configFile, fs)
			if err != nil {
				return cfg, opts, err
			}
			if err := applyFile(fs, configFile, settings, func(name string) bool {
				_, inEnv := os.LookupEnv(envName(name))
				return onCmdLine[name] || inEnv
			}); err != nil {
				return cfg, opts, err
			}
		}
		if err := applyEnv(fs, onCmdLine); err != nil {
			return cfg, opts, err
		}
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg.TLSCertFile = opts.tlsCert
	return cfg, opts, nil
}

// probeArgs parses args on a throwaway flag set: which flags the command
// line sets, and its --config. ok is false when args do not parse (or ask
// for -h); the real parse then reports that.
func probeArgs(args []string) (set map[string]bool, configFile string, ok bool) {
	var opts serveOptions
	fs := serveFlags(new(tether.Config), &opts)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if fs.Parse(args) != nil {
		return nil, "", false
	}
	set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, opts.configFile, true
}

// serveFlags defines every flag of tether serve on cfg and opts. Each
// default is the constant its package exports, so the flags, the
// library's zero values and README's table (TestREADMEFlags) agree.
func serveFlags(cfg *tether.Config, opts *serveOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("tether serve", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", tether.DefaultAddr, "`address` to listen on")
	fs.StringVar(&cfg.DataDir, "data", tether.DefaultDataDir, "`directory` for the embedded store")
	fs.Int64Var(&cfg.DataReserve, "data-reserve", pebblestore.DefaultReserve, "free `bytes` the embedded store keeps on its disk: below, publishes get 507 storage_full (negative: off)")
	fs.DurationVar(&cfg.ChannelIdle, "channel-idle", pebblestore.DefaultChannelIdle, "either engine drops a channel's state from memory after this long unused and unwaited, and loads it again on next use (negative: never)")
	fs.StringVar(&cfg.NATS.URLs, "nats", "", "comma-separated NATS `URLs`: keep channels on a JetStream cluster instead of the embedded store (--data then holds nothing)")
	fs.StringVar(&cfg.NATS.Stream, "nats-stream", tether.DefaultNATSStream, "JetStream stream holding the channels; every node of one service uses the same")
	fs.IntVar(&cfg.NATS.Replicas, "nats-replicas", 0, "servers holding each message before a publish is acknowledged (0: 3 on a JetStream cluster, else 1)")
	fs.DurationVar(&cfg.Retention.MaxAge, "retention-max-age", 0, "drop messages older than this (0 keeps them)")
	fs.IntVar(&cfg.Retention.MaxMessages, "retention-max-messages", 0, "keep at most this many messages per channel (0: no limit)")
	fs.DurationVar(&cfg.DedupWindow, "dedup-window", store.DefaultDedupWindow, "how long an Idempotency-Key is remembered")
	fs.DurationVar(&cfg.HTTP.DefaultWait, "wait-default", httpapi.DefaultWait, "long-poll wait when the request gives none")
	fs.DurationVar(&cfg.HTTP.MaxWait, "wait-max", httpapi.DefaultMaxWait, "longest long-poll wait a request may ask for")
	fs.Int64Var(&cfg.HTTP.MaxBodyBytes, "max-body", httpapi.DefaultMaxBodyBytes, "largest published message, in `bytes`")
	fs.DurationVar(&cfg.HTTP.BodyGrace, "body-grace", httpapi.DefaultBodyGrace, "a request body may take this long, plus a second per --body-min-rate bytes, else 408 body_timeout")
	fs.IntVar(&cfg.HTTP.BodyMinRate, "body-min-rate", httpapi.DefaultBodyMinRate, "slowest accepted request body, in `bytes` per second (see --body-grace)")
	fs.DurationVar(&cfg.HTTP.SSEHeartbeat, "sse-heartbeat", httpapi.DefaultSSEHeartbeat, "interval of SSE comment heartbeats")
	fs.DurationVar(&cfg.Session.MaxLag, "sse-max-lag", session.DefaultMaxLag, "old name of --max-lag, which now bounds SSE streams too")
	fs.DurationVar(&cfg.KeepAlive.Idle, "tcp-keepalive-idle", conn.DefaultKeepAliveIdle, "idle time before TCP keepalive probes")
	fs.DurationVar(&cfg.KeepAlive.Interval, "tcp-keepalive-interval", conn.DefaultKeepAliveInterval, "interval between TCP keepalive probes")
	fs.IntVar(&cfg.KeepAlive.Count, "tcp-keepalive-count", conn.DefaultKeepAliveCount, "unanswered probes before the peer is dead (only without TCP_USER_TIMEOUT)")
	fs.DurationVar(&cfg.KeepAlive.UserTimeout, "tcp-user-timeout", conn.DefaultUserTimeout, "TCP_USER_TIMEOUT: longest time sent data may stay unacknowledged (negative: off)")
	fs.StringVar(&cfg.TCPAddr, "tcp-addr", "", "`address` for the framed protocol over plain TCP (empty: off)")
	fs.DurationVar(&cfg.Session.PingInterval, "heartbeat-interval", session.DefaultPingInterval, "WebSocket/TCP: how often the server pings")
	fs.DurationVar(&cfg.Session.PingTimeout, "heartbeat-timeout", session.DefaultPingTimeout, "WebSocket/TCP: end a connection silent for this long (heartbeat-timeout)")
	fs.DurationVar(&cfg.Session.BusyPeerTimeout, "heartbeat-busy-timeout", session.DefaultBusyPeerTimeout, "WebSocket/TCP: longest a peer whose kernel still acknowledges may leave pings unanswered (negative: ignore the kernel)")
	fs.DurationVar(&cfg.Session.IdleTimeout, "idle-timeout", 0, "WebSocket/TCP: end a connection with no application data for this long (0: off)")
	fs.Func("idle-close-mode", "how an idle connection is closed: close, reset or discard (default reset)", func(v string) error {
		switch m := conn.CloseMode(v); m {
		case "", conn.CloseGraceful, conn.CloseReset, conn.CloseDiscard:
			cfg.Session.IdleCloseMode = m
			return nil
		}
		return fmt.Errorf("want close, reset or discard")
	})
	fs.IntVar(&cfg.Session.QueueBytes, "queue-bytes", session.DefaultQueueBytes, "WebSocket/TCP: outgoing queue bound per connection and lane, in `bytes`")
	fs.DurationVar(&cfg.Session.MaxLag, "max-lag", session.DefaultMaxLag, "end a connection (WebSocket, TCP, SSE) whose oldest undelivered message is this old (slow-consumer)")
	fs.IntVar(&cfg.Session.MaxFrameSize, "max-frame", session.DefaultMaxFrameSize, "WebSocket/TCP: largest frame a client may send, in `bytes`")
	fs.IntVar(&cfg.Session.MaxInFlight, "max-in-flight", session.DefaultMaxInFlight, "WebSocket/TCP: requests in flight per connection")
	fs.StringVar(&opts.secretFile, "token-secret-file", "", "`file` holding the HS256 secret tokens are signed with (turns access control on; README, Security)")
	fs.StringVar(&opts.keysFile, "token-keys-file", "", "`file` of public keys (PEM or JWKS) verifying RS256/ES256/EdDSA tokens (turns access control on)")
	fs.StringVar(&cfg.Tokens.Issuer, "token-issuer", "", "required iss of tokens (empty: not checked)")
	fs.StringVar(&cfg.Tokens.Audience, "token-audience", "", "required aud of tokens (empty: not checked)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow listening on a non-loopback address with no token configuration (open mode)")
	fs.Var((*listFlag)(&cfg.AllowedOrigins), "allowed-origins", "browser `origins` that may use the API and WebSocket cross-origin, comma-separated or repeated (https://app.example.com, https://*.example.com, *)")
	fs.Var((*listFlag)(&cfg.WSOriginPatterns), "ws-origin", "old name of --allowed-origins")
	fs.Var((*listFlag)(&cfg.AllowedHosts), "allowed-hosts", "Host `names` the server answers, comma-separated or repeated (default: localhost, 127.0.0.1, ::1 when --addr is loopback, else any)")
	fs.Var((*listFlag)(&cfg.TrustedProxies), "trusted-proxies", "reverse proxy `addresses` (IPs or CIDRs) whose X-Forwarded-For names the client, comma-separated or repeated (docs/deploy.md)")
	fs.StringVar(&opts.tlsCert, "tls-cert", "", "certificate `file` (PEM) for TLS on --addr and --tcp-addr; reloaded on SIGHUP")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "private key `file` (PEM) of --tls-cert")
	fs.IntVar(&cfg.Limits.MaxConnections, "max-connections", limits.DefaultMaxConnections, "connections in total, all transports (negative: no limit)")
	fs.IntVar(&cfg.Limits.MaxConnectionsPerUser, "max-connections-per-user", limits.DefaultMaxConnectionsPerUser, "connections of one token sub (negative: no limit)")
	fs.IntVar(&cfg.Limits.MaxConnectionsPerIP, "max-connections-per-ip", 0, "connections of one IP address or IPv6 /64 (0: 10000 with tokens, no limit in open mode; negative: no limit)")
	fs.IntVar(&cfg.Limits.MaxSubscriptions, "max-subscriptions", limits.DefaultMaxSubscriptions, "subscriptions in total (negative: no limit)")
	fs.IntVar(&cfg.Session.MaxSubscriptions, "max-subscriptions-per-connection", session.DefaultMaxSubscriptions, "subscriptions of one connection")
	fs.Float64Var(&cfg.Limits.PublishRate, "publish-rate", limits.DefaultPublishRate, "publishes per second one token sub may sustain (negative: no limit; open mode: none)")
	fs.IntVar(&cfg.Limits.PublishBurst, "publish-burst", limits.DefaultPublishBurst, "publishes one token sub may send at once")
	fs.DurationVar(&cfg.Jobs.HeartbeatInterval, "job-heartbeat", jobs.DefaultHeartbeatInterval, "jobs: how often workers renew their leases (expired leases are swept every half interval)")
	fs.IntVar(&cfg.Jobs.LeaseIntervals, "job-lease-intervals", jobs.DefaultLeaseIntervals, "jobs: a lease lasts this many heartbeat intervals")
	fs.DurationVar(&cfg.Jobs.CancelGrace, "job-cancel-grace", jobs.DefaultCancelGrace, "jobs: how long a cancelled handler may run before its attempt is fenced and the job recorded canceled")
	fs.BoolVar(&cfg.Jobs.RequireWorker, "jobs-require-worker", false, "jobs: refuse (409 no_worker) a job whose type no worker attached to this node runs, instead of creating it with a warning")
	fs.DurationVar(&cfg.Jobs.FollowGrace, "job-follow-grace", jobs.DefaultFollowGrace, "jobs: how long an on_disconnect=cancel job outlives its last follower's departure")
	fs.DurationVar(&cfg.ShutdownSpread, "shutdown-spread", tether.DefaultShutdownSpread, "window over which shutdown spreads clients' reconnects")
	fs.StringVar(&opts.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&opts.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&opts.grace, "shutdown-grace", tether.DefaultShutdownGrace, "how long a stop waits for requests in flight")
	fs.StringVar(&opts.configFile, "config", "", "TOML `file` of settings, keyed like these flags (tether config defaults prints one); flags and environment win over it")
	return fs
}

// envName is the environment variable of a flag: --max-lag is
// TETHER_MAX_LAG.
func envName(flagName string) string {
	return "TETHER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag from its TETHER_ variable, if set, but those
// in skip (given on the command line, which is parsed afterwards and wins
// on its own).
func applyEnv(fs *flag.FlagSet, skip map[string]bool) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok && err == nil && !skip[f.Name] {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}
