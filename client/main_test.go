package client

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The end-to-end tests of this package run real processes: cmd/tether and
// cmd/tether-worker, built once per test binary into a temp dir.

func TestMain(m *testing.M) {
	code := m.Run()
	if b, err := buildBinaries(); err == nil {
		os.RemoveAll(filepath.Dir(b.tether))
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type binaries struct{ tether, worker string }

var buildBinaries = sync.OnceValues(func() (binaries, error) {
	dir, err := os.MkdirTemp("", "tether-client-bin-")
	if err != nil {
		return binaries{}, err
	}
	b := binaries{tether: filepath.Join(dir, "tether"), worker: filepath.Join(dir, "tether-worker")}
	for _, c := range [][]string{{"-o", b.tether, "../cmd/tether"}, {"-o", b.worker, "../cmd/tether-worker"}} {
		out, err := exec.Command("go", append([]string{"build"}, c...)...).CombinedOutput()
		if err != nil {
			return b, fmt.Errorf("go build %v: %v\n%s", c, err, out)
		}
	}
	return b, nil
})

func needBinaries(t testing.TB) binaries {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("skipped on %s: these tests signal real processes", runtime.GOOS)
	}
	b, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proc is a running process; its JSON log lines (stderr) are scanned for
// the messages a test waits for.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []map[string]any // guarded by mu
	grew  chan struct{}    // guarded by mu; closed and replaced when a line is added
}

func startProc(t testing.TB, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), grew: make(chan struct{})}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { <-read; cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	return p
}

// waitLog waits up to within for a log line with msg and returns it.
func (p *proc) waitLog(t testing.TB, within time.Duration, msg string) map[string]any {
	t.Helper()
	return p.waitLogAttr(t, within, msg, "", "")
}

// waitLogAttr waits for a log line with msg whose attribute key is value
// (key "": any).
func (p *proc) waitLogAttr(t testing.TB, within time.Duration, msg, key, value string) map[string]any {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for seen := 0; ; {
		p.mu.Lock()
		lines, grew := p.lines, p.grew
		p.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if lines[seen]["msg"] == msg && (key == "" || fmt.Sprint(lines[seen][key]) == value) {
				return lines[seen]
			}
		}
		select {
		case <-grew:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if n == seen {
				t.Fatalf("process exited (%v) before logging %q", p.cmd.ProcessState, msg)
			}
		case <-deadline.C:
			t.Fatalf("no log line %q %s=%s within %v", msg, key, value, within)
		}
	}
}

// kill sends SIGKILL (after SIGCONT, in case it is stopped) and waits.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// server is a running `tether serve` on a fixed port, so that a restart
// comes back at the same address.
type server struct {
	*proc
	addr string // 127.0.0.1:port
	tcp  string // the TCP transport's address, when on
	dir  string
	args []string
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	s := &server{addr: freePort(t), dir: t.TempDir(), args: extra}
	s.start(t)
	return s
}

// startServerTCP is startServer with the TCP transport on.
func startServerTCP(t testing.TB, extra ...string) *server {
	t.Helper()
	s := &server{addr: freePort(t), tcp: freePort(t), dir: t.TempDir()}
	s.args = append([]string{"--tcp-addr", s.tcp}, extra...)
	s.start(t)
	return s
}

// start runs the binary (again), on the same address and data.
func (s *server) start(t testing.TB) {
	t.Helper()
	b := needBinaries(t)
	args := append([]string{"serve", "--addr", s.addr, "--data", s.dir, "--log-format", "json"}, s.args...)
	for try := 0; ; try++ {
		s.proc = startProc(t, b.tether, args...)
		l := s.waitLogOrExit(t, 30*time.Second, "listening")
		if l != nil {
			return
		}
		if try == 20 { // the port is still held (TIME_WAIT is not it: Go sets SO_REUSEADDR)
			t.Fatalf("tether did not start on %s", s.addr)
		}
		time.Sleep(50 * time.Millisecond) // a retry's pause, not a synchronisation
	}
}

// waitLogOrExit is waitLog that returns nil when the process exits first.
func (p *proc) waitLogOrExit(t testing.TB, within time.Duration, msg string) map[string]any {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for seen := 0; ; {
		p.mu.Lock()
		lines, grew := p.lines, p.grew
		p.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if lines[seen]["msg"] == msg {
				return lines[seen]
			}
		}
		select {
		case <-grew:
		case <-p.done:
			return nil
		case <-deadline.C:
			t.Fatalf("no log line %q within %v", msg, within)
		}
	}
}

func (s *server) ws() string   { return "ws://" + s.addr }
func (s *server) http() string { return "http://" + s.addr }

// httpc makes the tests' own HTTP requests; no keep-alive, so that no
// idle connection outlives a test (goleak).
var httpc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// readAll reads every message of channel by long-poll.
func readAll(t testing.TB, base, channel string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	after := "0"
	for {
		resp, err := httpc.Get(base + "/v1/channels/" + channel + "/messages?wait=0&limit=1000&after=" + after)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Messages []struct{ Data json.RawMessage }
			Next     string
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			all = append(all, m.Data)
		}
		if len(page.Messages) == 0 || page.Next == after {
			return all
		}
		after = page.Next
	}
}

// waitFor polls cond every few ms until it holds or within passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition against a deadline
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
