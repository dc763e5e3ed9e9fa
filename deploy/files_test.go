package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
)

// unit is a parsed systemd unit: each key's values, continuation lines
// joined, comments dropped.
type unit map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	var cont string
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if cont != "" {
			line = cont + " " + line
			cont = ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cont = strings.TrimSpace(l)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", path, line)
		}
		u[k] = append(u[k], v)
	}
	return u
}

// one returns the single value of key.
func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("tether.service: %s set %d times, want once", key, len(u[key]))
	}
	return u[key][0]
}

// flagValue returns the value of --name in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestSystemdUnit checks deploy/tether.service with systemd-analyze verify
// (when installed), checks that its limits agree with tether's settings and
// with deploy/sysctl.conf, then runs its ExecStart as systemd would (the
// binary and state directory substituted), with an SSE client connected,
// and stops it with its KillSignal: tether must exit 0 within its
// --shutdown-grace, well inside TimeoutStopSec.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	bin, err := buildTether()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rendered := render(t, "tether.service", dir, "tether.service", sub{"/usr/local/bin/tether", bin, 2})
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed (Debian: systemd); the unit is checked by the parse below only")
	} else {
		out, err := exec.Command("systemd-analyze", "verify", rendered).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	}

	u := parseUnit(t, "tether.service")
	args := strings.Fields(u.one(t, "ExecStart"))
	if args[0] != "/usr/local/bin/tether" || args[1] != "serve" {
		t.Fatalf("ExecStart %q, want /usr/local/bin/tether serve ...", args)
	}
	graceText, ok := flagValue(args, "shutdown-grace")
	if !ok {
		t.Fatal("ExecStart does not set --shutdown-grace, which TimeoutStopSec must exceed")
	}
	grace, err := time.ParseDuration(graceText)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(u.one(t, "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	if stop < grace+10*time.Second {
		t.Errorf("TimeoutStopSec %v, want at least --shutdown-grace %v + 10s, or systemd kills a graceful stop", stop, grace)
	}
	for key, want := range map[string]string{"KillSignal": "SIGTERM", "Restart": "on-failure", "StateDirectory": "tether", "DynamicUser": "yes"} {
		if got := u.one(t, key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	if data, _ := flagValue(args, "data"); data != "%S/tether" {
		t.Errorf("--data %q, want %%S/tether (the StateDirectory)", data)
	}
	nofile, err := strconv.Atoi(u.one(t, "LimitNOFILE"))
	if err != nil {
		t.Fatal(err)
	}
	sysctls := parseSysctl(t)
	if nrOpen, _ := strconv.Atoi(sysctls["fs.nr_open"]); nofile > nrOpen || nofile < 100000 {
		t.Errorf("LimitNOFILE=%d, want at least 100000 and at most fs.nr_open (%d in sysctl.conf)", nofile, nrOpen)
	}

	// Run ExecStart as systemd would: %S is the state directory's parent,
	// and the addresses are made free ports.
	state := filepath.Join(dir, "state")
	argv := slices.Clone(args[1:])
	for i, a := range argv {
		switch {
		case a == "%S/tether":
			argv[i] = filepath.Join(state, "tether")
		case a == "127.0.0.1:8080" || a == "127.0.0.1:7070":
			argv[i] = "127.0.0.1:0"
		case strings.Contains(a, "%"):
			t.Fatalf("ExecStart argument %q has a specifier the test does not substitute", a)
		}
	}
	cmd := exec.Command(bin, argv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(generous):
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-exited:
		t.Fatalf("tether started with the unit's ExecStart exited: %v", err)
	case <-time.After(generous):
		t.Fatal("tether started with the unit's ExecStart did not listen")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/channels/stop/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	told := make(chan bool, 1) // whether the SSE stream got the shutdown event
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "event: shutdown" {
				told <- true
				resp.Body.Close() // leave, as an EventSource told to would
				return
			}
		}
		told <- false
	}()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	go func() { // read until told of the shutdown, then leave
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if bytes.Contains(b, []byte(`"type":"shutdown"`)) {
				ws.Close(websocket.StatusGoingAway, "")
				return
			}
		}
	}()

	sig := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}[u.one(t, "KillSignal")]
	t0 := time.Now()
	cmd.Process.Signal(sig)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("tether exited with %v on %v, want 0", err, sig)
		}
		t.Logf("tether stopped %v after %v", time.Since(t0), sig)
		if took := time.Since(t0); took > grace+5*time.Second {
			t.Fatalf("tether took %v to stop, want within --shutdown-grace %v", took, grace)
		}
	case <-time.After(stop):
		t.Fatalf("tether did not exit within TimeoutStopSec %v of %v: systemd would SIGKILL it", stop, sig)
	}
	if !<-told {
		t.Fatal("the SSE client was not told of the shutdown (no event: shutdown): not a graceful stop")
	}
	if _, err := os.Stat(filepath.Join(state, "tether")); err != nil {
		t.Fatalf("no data in the state directory: %v", err)
	}
}

// parseSysctl reads deploy/sysctl.conf as key -> value.
func parseSysctl(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("sysctl.conf")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("sysctl.conf: %q is not key = value", line)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// TestSysctl checks that each setting of deploy/sysctl.conf exists in this
// kernel, and, as root, that the kernel accepts the per-network-namespace
// ones: they are written in a new network namespace (unshare -n), so this
// machine's own settings are left alone. fs.* are system-wide and only
// read.
func TestSysctl(t *testing.T) {
	settings := parseSysctl(t)
	var perNS []string
	for k, v := range settings {
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if _, err := os.Stat(path); err != nil {
			if strings.HasPrefix(k, "net.netfilter.") {
				t.Logf("%s: nf_conntrack is not loaded here (fine: the setting matters only where it is)", k)
				continue
			}
			t.Errorf("%s: not a setting of this kernel: %v", k, err)
			continue
		}
		for f := range strings.FieldsSeq(strings.ReplaceAll(v, ",", " ")) {
			if _, err := strconv.Atoi(f); err != nil {
				t.Errorf("%s = %q: not numbers", k, v)
			}
		}
		if strings.HasPrefix(k, "net.core.") || strings.HasPrefix(k, "net.ipv4.") {
			perNS = append(perNS, k)
		}
	}
	fileMax, _ := strconv.Atoi(settings["fs.file-max"])
	if nrOpen, _ := strconv.Atoi(settings["fs.nr_open"]); fileMax < nrOpen {
		t.Errorf("fs.file-max %d is below fs.nr_open %d: one process could take every descriptor", fileMax, nrOpen)
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: the kernel's acceptance of the net.* settings is not checked (unshare -n needs root)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	slices.Sort(perNS)
	var script strings.Builder
	for _, k := range perNS {
		fmt.Fprintf(&script, "sysctl -q -w %s=%q && echo %s=$(sysctl -n %s)\n", k, settings[k], k, k)
	}
	out, err := exec.Command("unshare", "-n", "sh", "-e", "-c", script.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("the kernel refused a setting (in a new network namespace): %v\n%s", err, out)
	}
	got := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = strings.Join(strings.Fields(v), " ")
	}
	for _, k := range perNS {
		want := strings.Join(strings.Fields(settings[k]), " ")
		if got[k] != want {
			t.Errorf("%s reads back %q after writing %q", k, got[k], want)
		}
	}
}

// TestNATSConfig loads deploy/nats/nats-server.conf with nats-server's own
// parser (the version tether pins) and checks the settings tether's
// durability depends on: JetStream with sync_interval always, in a
// three-server cluster.
func TestNATSConfig(t *testing.T) {
	opts, err := server.ProcessConfigFile("nats/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !opts.JetStream:
		t.Error("JetStream is off")
	case !opts.SyncAlways:
		t.Errorf("sync_interval is %v, want always (docs/architecture.md, Durability)", opts.SyncInterval)
	case opts.Cluster.Name == "" || len(opts.Routes) != 3:
		t.Errorf("cluster %q with %d routes, want a named cluster of 3", opts.Cluster.Name, len(opts.Routes))
	case opts.StoreDir == "":
		t.Error("no store_dir")
	}
}

// metricNames matches the series an alert expression reads.
var metricNames = regexp.MustCompile(`\b(tether|process|go)_[a-z_]+`)

// TestAlerts checks deploy/prometheus/tether-alerts.yml with promtool
// where it is installed (Debian: prometheus; scripts/test.sh does not
// install it, for its size), and, always, that every tether, process and
// go series the rules read is one a running tether exports.
func TestAlerts(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Log("promtool is not installed (Debian: prometheus): rule syntax not checked")
	} else if out, err := exec.Command("promtool", "check", "rules", "prometheus/tether-alerts.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	b, err := os.ReadFile("prometheus/tether-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range metricNames.FindAllString(string(b), -1) {
		names[n] = true
	}

	// Series with labels appear once something happened: a connection
	// ended, a job ended.
	tp := startTether(t)
	base := "http://" + tp.addr
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+tp.addr+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader(`{"type":"nobody-runs-this"}`))
	if err != nil {
		t.Fatal(err)
	}
	var job struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if resp, err = http.Post(base+"/v1/jobs/"+job.ID+"/cancel", "", nil); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "the cancelled job's end in tether_jobs_ended_total", func() bool {
		return tp.metric(t, "tether_jobs_ended_total", "state=canceled") == 1
	})
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
		}
	}
	for n := range names {
		if !exported[n] {
			t.Errorf("the alerts read %s, which tether does not export", n)
		}
	}
	if len(names) < 5 {
		t.Fatalf("found only %d series in the alerts: %v", len(names), names)
	}
}
