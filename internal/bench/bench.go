package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Config says what Run measures. Preset fills it for a scale; zero fields
// take the "small" preset's values.
type Config struct {
	// TetherBin is the tether binary to run as the server under test.
	// Required.
	TetherBin string `json:"-"`
	// TetherBeforeBin is the tether binary of the system TetherBefore:
	// another build (a base commit, say) measured the same way in the
	// same run. Required when TetherBefore is in Systems.
	TetherBeforeBin string `json:"tether_before_bin,omitempty"`
	// TetherArgs are extra flags for tether serve (the defaults are
	// measured unless they are given).
	TetherArgs []string `json:"tether_args,omitempty"`
	// NATSBin, when set, is a nats-server binary: every tether instance
	// then runs on the JetStream engine (--nats), over its own fresh
	// single-node nats-server with sync_interval always.
	NATSBin string `json:"-"`
	// Engine records which store tether ran on: "pebble" or "nats".
	Engine string `json:"engine,omitempty"`
	// RepoDir is the repository root, where scripts/peers and bench/peers
	// are. Required when a peer is in Systems.
	RepoDir string `json:"-"`
	// Systems are the servers to measure, tether first: the tables give
	// the first system's ratio to each other. A peer whose software is
	// missing is skipped with a note (see peerMissing).
	Systems []System
	// Scenarios to run, in order: idle, fanout, publish, churn, detection.
	Scenarios []string
	// Repeat runs each case this many times, the systems interleaved, and
	// reports the median. Silent-drop detection runs once.
	Repeat int

	// IdleConns is the N of the idle scenario, per transport.
	IdleConns int
	// IdleTransports: websocket, tcp, sse, long-poll (tcp: tether only).
	IdleTransports []string
	// IdleSettle is how long the server is left to settle (its garbage
	// collector, its workers' buffers) before its memory is read.
	IdleSettle time.Duration

	// FanoutTransports are how the fan-out subscribers connect:
	// websocket, tcp, sse, long-poll (tcp: tether only; socket.io:
	// websocket only).
	FanoutTransports []string
	// FanoutSubs are the subscriber counts of the fan-out cases.
	FanoutSubs []int
	// FanoutRate is the fixed-rate phase's target in deliveries/s; the
	// publish rate is FanoutRate/S messages/s.
	FanoutRate int
	// FanoutDuration is how long the fixed-rate phase publishes.
	FanoutDuration time.Duration
	// FanoutFlat is the flat-out phase's deliveries in total; it publishes
	// FanoutFlat/S messages back to back.
	FanoutFlat int
	// FanoutPublishers publish concurrently in both phases, each waiting
	// for its publish's acknowledgement before its next (each its own
	// sequence, so that every subscriber can check each one's order). 0
	// or 1: one publisher, the harness's original fan-out. With one, a
	// server that is slow to acknowledge while it fans out is given less
	// to deliver: published_per_s shows it.
	FanoutPublishers int `json:"fanout_publishers,omitempty"`

	// PublishConcurrency are the publisher counts of the publish cases.
	PublishConcurrency []int
	// PublishDuration is how long each publish case runs.
	PublishDuration time.Duration

	// ChurnClients reconnect concurrently for ChurnDuration while one
	// publisher sends ChurnRate messages/s.
	ChurnClients  int
	ChurnDuration time.Duration
	ChurnRate     int

	// DetectModes: rst, fin, silent.
	DetectModes []string
	// SilentTimeout bounds the wait for a server to notice a silent peer.
	SilentTimeout time.Duration

	// fanoutStarted, when set (by tests), runs in each fan-out case once
	// its subscribers are in and the server's ends are counted, just
	// before the measured window opens.
	fanoutStarted func(ctx context.Context, in *instance) error

	// Out is the directory for results.json and the PNG plots; empty
	// writes none.
	Out string `json:"-"`
	// Stdout gets the tables, Stderr the progress. Nil discards.
	Stdout, Stderr io.Writer `json:"-"`
}

// Scenarios is every scenario, in the order Run runs them.
var Scenarios = []string{"idle", "fanout", "publish", "churn", "detection"}

// Transports is every way a subscriber connects, as the idle and fan-out
// scenarios name them: tether's framed protocol over WebSocket and over
// TCP, Server-Sent Events, and long-poll.
var Transports = []string{"websocket", "tcp", "sse", "long-poll"}

// Preset returns the configuration of a scale: "tiny" (seconds; what the
// tests run), "small" (a minute or two), "full" (the figures in
// docs/benchmarks.md, about a quarter of an hour).
func Preset(scale string) (Config, error) {
	c := Config{
		Systems:            []System{Tether, Centrifugo, Nchan, SocketIO},
		Scenarios:          Scenarios,
		Repeat:             1,
		IdleTransports:     Transports,
		FanoutTransports:   Transports,
		PublishConcurrency: []int{1, 16, 64, 256},
		DetectModes:        []string{"rst", "fin", "silent"},
		SilentTimeout:      60 * time.Second,
	}
	switch scale {
	case "tiny":
		c.IdleConns, c.IdleSettle = 20, 100*time.Millisecond
		c.FanoutSubs, c.FanoutRate, c.FanoutDuration, c.FanoutFlat = []int{4}, 200, 300*time.Millisecond, 200
		c.PublishConcurrency, c.PublishDuration = []int{1, 4}, 200*time.Millisecond
		c.ChurnClients, c.ChurnDuration, c.ChurnRate = 4, 500*time.Millisecond, 100
		c.SilentTimeout = 15 * time.Second
	case "small":
		c.IdleConns, c.IdleSettle = 5000, 2*time.Second
		c.FanoutSubs, c.FanoutRate, c.FanoutDuration, c.FanoutFlat = []int{1000}, 50000, 3*time.Second, 200000
		c.PublishDuration = 2 * time.Second
		c.ChurnClients, c.ChurnDuration, c.ChurnRate = 50, 3*time.Second, 200
	case "full":
		c.IdleConns, c.IdleSettle = 100000, 3*time.Second
		c.FanoutSubs, c.FanoutRate, c.FanoutDuration, c.FanoutFlat = []int{1000, 10000}, 100000, 10*time.Second, 2000000
		c.PublishDuration = 5 * time.Second
		c.ChurnClients, c.ChurnDuration, c.ChurnRate = 200, 10*time.Second, 200
	default:
		return c, fmt.Errorf("bench: unknown scale %q (tiny, small, full)", scale)
	}
	return c, nil
}

// Result is one case of one scenario on one system.
type Result struct {
	Scenario string `json:"scenario"`
	Case     string `json:"case"`
	System   System `json:"system"`
	// Metrics are the medians over Runs.
	Metrics map[string]float64   `json:"metrics,omitempty"`
	Runs    []map[string]float64 `json:"runs,omitempty"`
	// Text holds non-numeric findings, such as the end reason a server
	// reported, by metric.
	Text map[string]string `json:"text,omitempty"`
	// Skipped says why the case did not run on this system.
	Skipped string `json:"skipped,omitempty"`
	Err     string `json:"error,omitempty"`
}

// Report is what Run measured, and where.
type Report struct {
	Machine  Machine  `json:"machine"`
	Started  string   `json:"started"`
	Finished string   `json:"finished"`
	Command  string   `json:"command"`
	Config   Config   `json:"config"`
	Results  []Result `json:"results"`
}

// Machine describes where the figures were measured.
type Machine struct {
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	LoadBefore  string `json:"load_before"`
	LoadAfter   string `json:"load_after"`
	NoFile      uint64 `json:"rlimit_nofile"`
}

// measure is what one run of a case on one system found.
type measure struct {
	m    map[string]float64
	text map[string]string
}

// benchCase is one case of a scenario: run measures it on one system.
type benchCase struct {
	scenario, name string
	systems        []System          // the systems it applies to
	once           bool              // run once whatever Repeat says
	skip           string            // why it cannot run here at all
	skipFor        map[System]string // why it does not apply to a system
	run            func(ctx context.Context, sys System) (measure, error)
}

// Run measures every scenario of cfg on every system, printing progress
// and tables, and writes results.json and plots to cfg.Out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.tmp)
	rep := &Report{Machine: machine(), Started: time.Now().UTC().Format(time.RFC3339), Command: strings.Join(os.Args, " "), Config: r.cfg}
	rep.Machine.NoFile = r.noFile
	for _, sc := range r.cfg.Scenarios {
		cases, err := r.cases(sc)
		if err != nil {
			return rep, err
		}
		var results []Result
		for _, bc := range cases {
			results = append(results, r.runCase(ctx, bc)...)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
		printTable(r.cfg.Stdout, sc, results)
		rep.Results = append(rep.Results, results...)
	}
	rep.Machine.LoadAfter = loadavg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	if r.cfg.Out != "" {
		if err := writeOut(r.cfg.Out, rep); err != nil {
			return rep, err
		}
		r.logf("results in %s", r.cfg.Out)
	}
	return rep, nil
}

// runner carries a Run's configuration and scratch directory.
type runner struct {
	cfg     Config
	tmp     string
	missing map[System]string // peers that cannot run here, and why
	noFile  uint64            // RLIMIT_NOFILE in force
}

func newRunner(cfg Config) (*runner, error) {
	def, _ := Preset("small")
	if cfg.TetherBin == "" {
		return nil, errors.New("bench: Config.TetherBin is required")
	}
	fill(&cfg.Systems, def.Systems)
	fill(&cfg.Scenarios, def.Scenarios)
	fill(&cfg.IdleTransports, def.IdleTransports)
	fill(&cfg.FanoutTransports, def.FanoutTransports)
	fill(&cfg.FanoutSubs, def.FanoutSubs)
	fill(&cfg.PublishConcurrency, def.PublishConcurrency)
	fill(&cfg.DetectModes, def.DetectModes)
	for _, p := range []struct {
		v *int
		d int
	}{{&cfg.Repeat, def.Repeat}, {&cfg.IdleConns, def.IdleConns}, {&cfg.FanoutRate, def.FanoutRate},
		{&cfg.FanoutFlat, def.FanoutFlat}, {&cfg.ChurnClients, def.ChurnClients}, {&cfg.ChurnRate, def.ChurnRate}} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	for _, p := range []struct {
		v *time.Duration
		d time.Duration
	}{{&cfg.FanoutDuration, def.FanoutDuration}, {&cfg.IdleSettle, def.IdleSettle},
		{&cfg.PublishDuration, def.PublishDuration}, {&cfg.ChurnDuration, def.ChurnDuration}, {&cfg.SilentTimeout, def.SilentTimeout}} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("bench: unknown scenario %q (%s)", s, strings.Join(Scenarios, ", "))
		}
	}
	for _, tr := range slices.Concat(cfg.IdleTransports, cfg.FanoutTransports) {
		if !slices.Contains(Transports, tr) {
			return nil, fmt.Errorf("bench: unknown transport %q (%s)", tr, strings.Join(Transports, ", "))
		}
	}
	if slices.Contains(cfg.Systems, TetherBefore) && cfg.TetherBeforeBin == "" {
		return nil, errors.New("bench: Config.TetherBeforeBin is required with the system tether-before")
	}
	r := &runner{cfg: cfg, missing: map[System]string{}}
	for _, s := range cfg.Systems {
		if why := peerMissing(cfg.RepoDir, s); why != "" {
			r.missing[s] = why
			r.logf("skipping %s: %s", s, why)
		}
	}
	lim := raiseNoFile(r.logf)
	r.noFile = lim
	if lim > 0 && uint64(r.cfg.IdleConns)+1000 > lim {
		n := int(lim) - 1000
		r.logf("idle: %d connections asked, but RLIMIT_NOFILE is %d (and cannot be raised here): using %d", r.cfg.IdleConns, lim, n)
		r.cfg.IdleConns = n
	}
	tmp, err := os.MkdirTemp("", "tether-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r.tmp = tmp
	return r, nil
}

func fill[T any](v *[]T, d []T) {
	if len(*v) == 0 {
		*v = d
	}
}

// peerMissing says why sys cannot run here, or "".
func peerMissing(repo string, sys System) string {
	switch sys {
	case Tether, TetherBefore:
		return ""
	case Nchan:
		if _, err := exec.LookPath("nginx"); err != nil {
			return "nginx not installed (scripts/peers/nchan.sh install)"
		}
		for _, p := range []string{"/usr/lib/nginx/modules/ngx_nchan_module.so", "/usr/share/nginx/modules/ngx_nchan_module.so"} {
			if _, err := os.Stat(p); err == nil {
				return ""
			}
		}
		return "the nchan module is not installed (scripts/peers/nchan.sh install)"
	case SocketIO:
		if _, err := exec.LookPath("node"); err != nil {
			return "node not installed (Debian: nodejs npm)"
		}
		if _, err := os.Stat(filepath.Join(repo, "bench/peers/socketio/node_modules/socket.io")); err != nil {
			return "socket.io not installed (scripts/peers/socketio.sh install)"
		}
		return ""
	case Centrifugo:
		if _, err := centrifugoBin(); err != nil {
			return "centrifugo not installed (scripts/peers/centrifugo.sh install)"
		}
		return ""
	}
	return fmt.Sprintf("unknown system %q", sys)
}

// raiseNoFile lifts RLIMIT_NOFILE as far as allowed: 100k connections
// need 100k descriptors on each side, and the servers inherit the limit.
// It returns the limit in force.
func raiseNoFile(logf func(string, ...any)) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	want := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		var n uint64
		if _, err := fmt.Sscan(string(b), &n); err == nil && n > 0 {
			want = n
		}
	}
	nl := syscall.Rlimit{Cur: want, Max: want}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err != nil {
		nl = syscall.Rlimit{Cur: l.Max, Max: l.Max}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl)
		logf("RLIMIT_NOFILE raised to its hard limit %d only (%v)", l.Max, err)
		return l.Max
	}
	return want
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Stderr, "bench: "+format+"\n", args...)
}

// runCase runs bc on each system it applies to, Repeat times with the
// systems interleaved, and returns one Result per system.
func (r *runner) runCase(ctx context.Context, bc benchCase) []Result {
	res := map[System]*Result{}
	var order []System
	for _, s := range r.cfg.Systems {
		if !slices.Contains(bc.systems, s) {
			continue
		}
		order = append(order, s)
		res[s] = &Result{Scenario: bc.scenario, Case: bc.name, System: s}
		if why := r.missing[s]; why != "" {
			res[s].Skipped = why
		} else if bc.skip != "" {
			res[s].Skipped = bc.skip
		} else if why := bc.skipFor[s]; why != "" {
			res[s].Skipped = why
		}
	}
	reps := r.cfg.Repeat
	if bc.once {
		reps = 1
	}
	for i := range reps {
		for _, s := range order {
			re := res[s]
			if re.Skipped != "" || re.Err != "" {
				continue
			}
			r.logf("%s %s: %s (run %d/%d)", bc.scenario, bc.name, s, i+1, reps)
			m, err := bc.run(ctx, s)
			if err != nil {
				re.Err = err.Error()
				r.logf("%s %s: %s: %v", bc.scenario, bc.name, s, err)
				continue
			}
			re.Runs = append(re.Runs, m.m)
			if m.text != nil {
				re.Text = m.text
			}
		}
	}
	out := make([]Result, 0, len(order))
	for _, s := range order {
		re := res[s]
		if re.Skipped != "" {
			r.logf("%s %s: %s skipped: %s", bc.scenario, bc.name, s, re.Skipped)
		}
		re.Metrics = medians(re.Runs)
		out = append(out, *re)
	}
	return out
}

func medians(runs []map[string]float64) map[string]float64 {
	if len(runs) == 0 {
		return nil
	}
	m := map[string]float64{}
	for k := range runs[0] {
		var xs []float64
		for _, r := range runs {
			if v, ok := r[k]; ok {
				xs = append(xs, v)
			}
		}
		m[k] = median(xs)
	}
	return m
}

// cases lists the cases of scenario sc.
func (r *runner) cases(sc string) ([]benchCase, error) {
	switch sc {
	case "idle":
		return r.idleCases(), nil
	case "fanout":
		return r.fanoutCases(), nil
	case "publish":
		return r.publishCases(), nil
	case "churn":
		return r.churnCases(), nil
	case "detection":
		return r.detectCases(), nil
	}
	return nil, fmt.Errorf("bench: unknown scenario %q", sc)
}

// withInstance starts sys on loopback for one run of a case, and stops it
// when f returns.
func (r *runner) withInstance(ctx context.Context, sys System, f func(in *instance) (measure, error)) (measure, error) {
	in, err := startSystem(ctx, &r.cfg, sys, loopback, r.tmp)
	if err != nil {
		return measure{}, err
	}
	m, err := f(in)
	if err != nil && in.warnings != nil {
		if w := in.warnings.String(); w != "" {
			err = fmt.Errorf("%w (%s logged: %s)", err, sys, w)
		}
	}
	return m, errors.Join(err, in.stop())
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryBytes = kb << 10
		}
	}
	return m
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// writeOut writes results.json and the plots into dir.
func writeOut(dir string, rep *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return WritePlots(dir, rep)
}
