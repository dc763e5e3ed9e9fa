package bench

import (
	"bufio"
	"bytes"
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
	"sync"
	"syscall"
	"time"
)

// System names a server under test.
type System string

// The systems the harness knows.
const (
	Tether   System = "tether"
	Nchan    System = "nchan"
	SocketIO System = "socketio"
	// Centrifugo is Centrifugo v6 (bench/peers/centrifugo), memory engine
	// with history and recovery on.
	Centrifugo System = "centrifugo"
	// TetherBefore is a second tether binary (Config.TetherBeforeBin),
	// run exactly as Tether is, so that two builds of the server, say a
	// change and its base, are measured side by side in one run.
	TetherBefore System = "tether-before"
)

// IsTether reports whether s is a tether build: Tether or TetherBefore.
func (s System) IsTether() bool { return s == Tether || s == TetherBefore }

// kind is the protocol s speaks: Tether for both tether builds.
func (s System) kind() System {
	if s.IsTether() {
		return Tether
	}
	return s
}

// place says where a server listens and where its clients dial from: on
// loopback, or in the two network namespaces of a netnsPair.
type place struct {
	host string     // IP the server listens on
	pair *netnsPair // nil: loopback, no namespaces
}

var loopback = place{host: "127.0.0.1"}

// instance is one running server process of a System, started for one case
// and stopped at its end.
type instance struct {
	sys     System
	addr    string       // host:port of its HTTP listener
	tcpAddr string       // host:port of its framed-protocol TCP listener (tether only)
	admin   *http.Client // reaches the server for metrics and publishing
	ends    *endLog      // departures it reported (tether, socket.io)
	pid     int          // the process whose tree is measured
	stop    func() error
	// warnings, if set, are the last lines above info level the server
	// logged, for the error of a case that failed on it (Centrifugo).
	warnings *lineTail
}

// lineTail keeps the last few lines written to it; safe for concurrent use.
type lineTail struct {
	mu    sync.Mutex
	lines []string // guarded by mu
}

func (t *lineTail) add(line []byte) {
	const keep, width = 5, 300
	l := strings.TrimSpace(string(line))
	if len(l) > width {
		l = l[:width]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > keep {
		t.lines = t.lines[len(t.lines)-keep:]
	}
}

func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}

// startSystem starts a fresh instance of sys at pl, with its runtime files
// under a new directory in tmp. The instance must be stopped.
func startSystem(ctx context.Context, cfg *Config, sys System, pl place, tmp string) (*instance, error) {
	dir, err := os.MkdirTemp(tmp, string(sys)+"-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var in *instance
	switch sys {
	case Tether, TetherBefore:
		in, err = startTether(ctx, cfg, sys, pl, dir)
	case Nchan:
		in, err = startNchan(ctx, cfg, pl, dir)
	case SocketIO:
		in, err = startSocketIO(ctx, cfg, pl, dir)
	case Centrifugo:
		in, err = startCentrifugo(ctx, cfg, pl, dir)
	default:
		err = fmt.Errorf("unknown system %q", sys)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start %s: %w", sys, err)
	}
	stop := in.stop
	in.stop = func() error {
		err := stop()
		in.admin.CloseIdleConnections()
		return errors.Join(err, os.RemoveAll(dir))
	}
	if err := in.waitReady(ctx); err != nil {
		in.stop()
		return nil, fmt.Errorf("bench: start %s: %w", sys, err)
	}
	return in, nil
}

// nsCommand runs name in namespace ns ("" for none) with ip netns exec,
// which execs the command: its pid is the server's.
func nsCommand(ns, name string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func (pl place) serverNS() string {
	if pl.pair == nil {
		return ""
	}
	return pl.pair.server
}

// adminClient dials the server from where it runs, so that it keeps
// working after the client namespace's cable is pulled.
func adminClient(pl place) *http.Client {
	d := &dialer{ns: pl.serverNS()}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1024}}
}

// startProcess starts cmd, hands each line of its output stream (stderr
// for tether, stdout for node) to onLine with the time it was read, and
// returns a stop func that sends SIGTERM, then SIGKILL after grace.
func startProcess(cmd *exec.Cmd, useStdout bool, onLine func(line []byte, at time.Time)) (stop func() error, err error) {
	var r io.ReadCloser
	if useStdout {
		r, err = cmd.StdoutPipe()
	} else {
		r, err = cmd.StderrPipe()
	}
	if err != nil {
		return nil, err
	}
	// No Pdeathsig: it is tied to the forking OS thread, and netnstest.In
	// ends threads, which would kill the server mid-run.
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				onLine(line, time.Now())
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { <-read; cmd.Wait(); close(done) }()
	return func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		return nil
	}, nil
}

// waitReady polls the server's HTTP port until it answers, for at most 20 s.
func (in *instance) waitReady(ctx context.Context) error {
	path := map[System]string{Tether: "/healthz", Nchan: "/nchan_stub_status", SocketIO: "/stats", Centrifugo: "/health"}[in.sys.kind()]
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+in.addr+path, nil)
		res, err := in.admin.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", path, res.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not ready after 20s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rss is the resident memory of the instance's process and its
// descendants (nginx's workers), in bytes, from /proc/<pid>/status.
func (in *instance) rss() (int64, error) {
	var total int64
	for _, pid := range processTree(in.pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue // exited meanwhile
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb << 10
			}
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("bench: no VmRSS for pid %d", in.pid)
	}
	return total, nil
}

// processTree returns root and its descendants, by the parent pid field of
// /proc/<pid>/stat.
func processTree(root int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		for pid, pp := range parent {
			if pp == tree[i] {
				tree = append(tree, pid)
			}
		}
	}
	return tree
}

// getText GETs path from the server and returns the body.
func (in *instance) getText(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+in.addr+path, nil)
	if err != nil {
		return "", err
	}
	res, err := in.admin.Do(req)
	if err != nil {
		return "", fmt.Errorf("bench: GET %s: %w", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != 200 {
		err = fmt.Errorf("bench: GET %s: %s", path, res.Status)
	}
	return string(b), err
}

// connections is the number of client connections the server itself
// counts: tether's tether_connections_open (all transports), Nchan's
// subscribers (nchan_stub_status), socket.io's engine clientsCount,
// Centrifugo's clients (its info API).
func (in *instance) connections(ctx context.Context) (int, error) {
	switch in.sys.kind() {
	case Tether:
		s, err := in.getText(ctx, "/metrics")
		if err != nil {
			return 0, err
		}
		return int(sumMetric(s, "tether_connections_open")), nil
	case Nchan:
		s, err := in.getText(ctx, "/nchan_stub_status")
		if err != nil {
			return 0, err
		}
		for line := range strings.SplitSeq(s, "\n") {
			if v, ok := strings.CutPrefix(line, "subscribers: "); ok {
				return strconv.Atoi(strings.TrimSpace(v))
			}
		}
		return 0, errors.New("bench: no subscribers line in nchan_stub_status")
	case Centrifugo:
		return centrifugoClients(ctx, in)
	default:
		s, err := in.getText(ctx, "/stats")
		if err != nil {
			return 0, err
		}
		var st struct{ Clients int }
		err = json.Unmarshal([]byte(s), &st)
		return st.Clients, err
	}
}

// goroutines is tether's go_goroutines; ok is false for the peers.
func (in *instance) goroutines(ctx context.Context) (n float64, ok bool, err error) {
	if !in.sys.IsTether() {
		return 0, false, nil
	}
	s, err := in.getText(ctx, "/metrics")
	if err != nil {
		return 0, false, err
	}
	return sumMetric(s, "go_goroutines"), true, nil
}

// sumMetric adds up every sample of a Prometheus metric in the text
// exposition format.
func sumMetric(text, name string) float64 {
	var sum float64
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) {
			continue
		}
		if c := line[len(name)]; c != ' ' && c != '{' {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// waitConnections polls until the server counts at least n connections (or
// at most n, when down is set), for at most d.
func (in *instance) waitConnections(ctx context.Context, n int, down bool, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		got, err := in.connections(ctx)
		if err == nil && ((!down && got >= n) || (down && got <= n)) {
			return got, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var ends map[string]int
			if in.ends != nil {
				ends = in.ends.counts()
			}
			return got, fmt.Errorf("bench: %s counts %d connections after %v, want %d (err %v; ends so far by reason: %v)", in.sys, got, d, n, err, ends)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// endEvent is a departure a server reported.
type endEvent struct {
	reason string
	at     time.Time // when the harness read the report
}

// endLog delivers the departures a server reports for the remote
// addresses someone watches; others are ignored, so that 100k ends at
// teardown cost nothing but parsing.
type endLog struct {
	mu      sync.Mutex
	watched map[string]chan endEvent // guarded by mu
	reasons map[string]int           // every end by reason; guarded by mu
}

func newEndLog() *endLog {
	return &endLog{watched: map[string]chan endEvent{}, reasons: map[string]int{}}
}

// counts returns how many connections ended so far, by reason.
func (l *endLog) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.reasons)
}

// watch returns a channel that receives the end of the connection from
// remote (the client's local address).
func (l *endLog) watch(remote string) <-chan endEvent {
	c := make(chan endEvent, 1)
	l.mu.Lock()
	l.watched[remote] = c
	l.mu.Unlock()
	return c
}

func (l *endLog) add(remote, reason string, at time.Time) {
	l.mu.Lock()
	l.reasons[reason]++
	c, ok := l.watched[remote]
	delete(l.watched, remote)
	l.mu.Unlock()
	if ok {
		c <- endEvent{reason: reason, at: at}
	}
}

// freePort returns a port free on host now (in namespace ns, if set).
func freePort(ns, host string) (int, error) {
	var port int
	err := inNS(ns, func() error {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		return ln.Close()
	})
	return port, err
}
