package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testVersion is the version the test binary is linked with.
const testVersion = "v0.0.0-clitest"

// buildBinary builds cmd/tether once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tether-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tether")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildBinary(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// proc is a running tether binary.
type proc struct {
	cmd     *exec.Cmd
	base    string
	tcpAddr string // set when started with --tcp-addr
	done    chan struct{}
}

// startBinary runs `tether serve` on a free loopback port with data in dir
// and returns once it logs that it listens.
func startBinary(t *testing.T, dir string, extra ...string) *proc {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	tcpAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				switch line.Msg {
				case "listening":
					addr <- line.Addr
				case "listening for TCP":
					tcpAddr <- line.Addr
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case a := <-tcpAddr: // logged before the HTTP address
		p.tcpAddr = a
		p.base = "http://" + <-addr
	case a := <-addr:
		p.base = "http://" + a
	case <-p.done:
		t.Fatalf("tether exited before listening: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		t.Fatal("tether did not listen within 30s")
	}
	return p
}

// acked is one publish the server acknowledged.
type acked struct {
	id   string
	data string
}

// SIGKILL after N acknowledged publishes from concurrent publishers, then a
// restart: every acknowledged message is read back, in each publisher's
// order, none twice.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, dir)
	const publishers, enough = 16, 800
	var (
		mu    sync.Mutex
		acks  = make([][]acked, publishers)
		total int
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		once  sync.Once
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < publishers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 100000; i++ { // bounded; stopped by the kill long before
				select {
				case <-stop:
					return
				default:
				}
				data := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				resp, err := client.Post(p.base+"/v1/channels/kill/messages", "application/json", strings.NewReader(data))
				if err != nil {
					return // the server died under us: this one was not acknowledged
				}
				var a struct{ ID string }
				err = json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					return
				}
				mu.Lock()
				acks[w] = append(acks[w], acked{a.ID, data})
				total++
				if total >= enough {
					once.Do(func() { p.cmd.Process.Signal(syscall.SIGKILL) })
				}
				mu.Unlock()
			}
		}(w)
	}
	<-p.done
	close(stop)
	wg.Wait()
	t.Logf("SIGKILL after %d acknowledged publishes", total)

	p2 := startBinary(t, dir)
	got := readAll(t, p2.base, "kill")
	pos := make(map[string]int, len(got))
	for i, m := range got {
		if _, dup := pos[m.data]; dup {
			t.Fatalf("message %s read back twice", m.data)
		}
		pos[m.data] = i
	}
	for w, list := range acks {
		last := -1
		for _, a := range list {
			i, ok := pos[a.data]
			switch {
			case !ok:
				t.Fatalf("acknowledged message %s (id %s) lost", a.data, a.id)
			case got[i].id != a.id:
				t.Fatalf("message %s came back with id %s, acknowledged as %s", a.data, got[i].id, a.id)
			case i < last:
				t.Fatalf("publisher %d: message %s read back out of order", w, a.data)
			}
			last = i
		}
	}
}

// readAll pages through a channel from the start.
func readAll(t *testing.T, base, channel string) []acked {
	t.Helper()
	var out []acked
	after := "0"
	for {
		resp, err := http.Get(base + "/v1/channels/" + channel + "/messages?wait=0&limit=1000&after=" + after)
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Messages []struct {
				ID   string
				Data json.RawMessage
			}
			Next string
			Gap  bool
		}
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || a.Gap {
			t.Fatalf("read after %s: %v gap=%v", after, err, a.Gap)
		}
		if len(a.Messages) == 0 {
			return out
		}
		for _, m := range a.Messages {
			out = append(out, acked{m.ID, string(m.Data)})
		}
		after = a.Next
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	p := startBinary(t, t.TempDir())
	resp, err := http.Get(p.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	t.Setenv("TETHER_ADDR", "127.0.0.1:9999")
	t.Setenv("TETHER_DATA", "/tmp/from-env")
	cfg, _, err := parseServeFlags([]string{"--data", "/tmp/from-flag"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" || cfg.DataDir != "/tmp/from-flag" {
		t.Fatalf("addr %q data %q: want env addr and flag data", cfg.Addr, cfg.DataDir)
	}
	t.Setenv("TETHER_WAIT_MAX", "soon")
	if _, _, err := parseServeFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "TETHER_WAIT_MAX") {
		t.Fatalf("bad env value: err %v, want one naming TETHER_WAIT_MAX", err)
	}
}
