package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests of this package run real processes: cmd/tether and this
// worker, built once per test binary into a temp dir.

type binaries struct{ tether, worker string }

var buildBinaries = sync.OnceValues(func() (binaries, error) {
	dir, err := os.MkdirTemp("", "tether-worker-bin-")
	if err != nil {
		return binaries{}, err
	}
	b := binaries{tether: filepath.Join(dir, "tether"), worker: filepath.Join(dir, "tether-worker")}
	for _, c := range [][]string{{"-o", b.tether, "../tether"}, {"-o", b.worker, "."}} {
		out, err := exec.Command("go", append([]string{"build"}, c...)...).CombinedOutput()
		if err != nil {
			return b, fmt.Errorf("go build %v: %v\n%s", c, err, out)
		}
	}
	return b, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if b, err := buildBinaries(); err == nil {
		os.RemoveAll(filepath.Dir(b.tether))
	}
	os.Exit(code)
}

func needProcesses(t testing.TB) binaries {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("skipped on %s: these tests signal real processes (SIGKILL, SIGSTOP) and are written for Linux", runtime.GOOS)
	}
	b, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proc is a running process whose JSON log lines (stderr) are kept.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []map[string]any // guarded by mu
	grew  chan struct{}    // guarded by mu; closed and replaced when a line is added
}

func startProc(t testing.TB, bin string, args ...string) *proc {
	t.Helper()
	p, err := launch(bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

// launch starts bin; the caller kills it.
func launch(bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
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
	return p, nil
}

// waitLog waits up to within for a log line with msg whose attrs match,
// and returns it.
func (p *proc) waitLog(t testing.TB, within time.Duration, msg string, attrs ...string) map[string]any {
	t.Helper()
	return p.waitLogAny(t, within, []string{msg}, attrs...)
}

// waitLogAny is waitLog for a line with any of msgs.
func (p *proc) waitLogAny(t testing.TB, within time.Duration, msgs []string, attrs ...string) map[string]any {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for seen := 0; ; {
		p.mu.Lock()
		lines, grew := p.lines, p.grew
		p.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if l := lines[seen]; slices.Contains(msgs, fmt.Sprint(l["msg"])) && matches(l, attrs) {
				return l
			}
		}
		select {
		case <-grew:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if n == seen {
				t.Fatalf("process exited (%v) before logging %q %v", p.cmd.ProcessState, msgs, attrs)
			}
		case <-deadline.C:
			p.mu.Lock()
			for _, l := range p.lines {
				t.Logf("log: %v", l)
			}
			p.mu.Unlock()
			t.Fatalf("no log line %q %v within %v", msgs, attrs, within)
		}
	}
}

func matches(l map[string]any, attrs []string) bool {
	for i := 0; i+1 < len(attrs); i += 2 {
		if fmt.Sprint(l[attrs[i]]) != attrs[i+1] {
			return false
		}
	}
	return true
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) signal(s syscall.Signal) { p.cmd.Process.Signal(s) }

// kill sends SIGKILL (after SIGCONT, in case it is stopped) and waits.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// server is a running `tether serve`.
type server struct {
	*proc
	base string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port/v1/ws
}

func startServer(t testing.TB, dir string, extra ...string) *server {
	t.Helper()
	b := needProcesses(t)
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-format", "json"}, extra...)
	p := startProc(t, b.tether, args...)
	l := p.waitLog(t, 30*time.Second, "listening")
	addr, _ := l["addr"].(string)
	return &server{proc: p, base: "http://" + addr, ws: "ws://" + addr + "/v1/ws"}
}

// startWorker runs tether-worker against s and waits until it is connected.
func startWorker(t testing.TB, s *server, id string, extra ...string) *proc {
	t.Helper()
	b := needProcesses(t)
	args := append([]string{"--url", s.ws, "--id", id, "--log-format", "json"}, extra...)
	p := startProc(t, b.worker, args...)
	p.waitLog(t, 30*time.Second, "connected")
	return p
}

var httpc = &http.Client{Timeout: 30 * time.Second}

// jobView is what GET /v1/jobs/{id} answers, the fields the tests read.
type jobView struct {
	ID      string          `json:"id"`
	State   string          `json:"state"`
	Attempt int             `json:"attempt"`
	Worker  string          `json:"worker"`
	Started time.Time       `json:"started"`
	Ended   time.Time       `json:"ended"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
}

func (j jobView) final() bool {
	return j.State == "succeeded" || j.State == "failed" || j.State == "canceled"
}

func call(method, url string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (s *server) create(t testing.TB, spec map[string]any) string {
	t.Helper()
	var ref struct{ ID string }
	if err := call("POST", s.base+"/v1/jobs", spec, &ref); err != nil {
		t.Fatal(err)
	}
	return ref.ID
}

func (s *server) job(t testing.TB, id string) jobView {
	t.Helper()
	var j jobView
	if err := call("GET", s.base+"/v1/jobs/"+id, nil, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func (s *server) cancel(t testing.TB, id string) {
	t.Helper()
	if err := call("POST", s.base+"/v1/jobs/"+id+"/cancel", nil, nil); err != nil {
		t.Fatal(err)
	}
}

// waitJob polls the job until ok holds, for up to within.
func (s *server) waitJob(t testing.TB, id string, within time.Duration, what string, ok func(jobView) bool) jobView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := s.job(t, id)
		if ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not %s within %v: %+v", id, what, within, j)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition against a deadline
	}
}

// events reads every event on the job's channel.
func (s *server) events(t testing.TB, id string) []map[string]any {
	t.Helper()
	var all []map[string]any
	after := "0"
	for {
		var page struct {
			Messages []struct{ Data map[string]any }
			Next     string
		}
		if err := call("GET", s.base+"/v1/channels/job."+id+"/messages?after="+after+"&wait=0&limit=1000", nil, &page); err != nil {
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

// effect is one line of the workers' effects log.
type effect struct {
	job        string
	attempt    int
	start, end int64 // unix nanos
	pid        int
}

func readEffects(t testing.TB, path string) []effect {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []effect
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("effects line %d: %q: want 5 fields", i+1, line)
		}
		var e effect
		var errs [4]error
		e.job = f[0]
		e.attempt, errs[0] = strconv.Atoi(f[1])
		e.start, errs[1] = strconv.ParseInt(f[2], 10, 64)
		e.end, errs[2] = strconv.ParseInt(f[3], 10, 64)
		e.pid, errs[3] = strconv.Atoi(f[4])
		for _, err := range errs {
			if err != nil {
				t.Fatalf("effects line %d: %q: %v", i+1, line, err)
			}
		}
		out = append(out, e)
	}
	return out
}
