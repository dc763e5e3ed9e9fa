package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/client"
	"github.com/tether-run/tether/worker"
	"go.uber.org/goleak"
)

// checkLeaks fails the test if goroutines it started outlive it (the
// node's, the clients', the commands'): registered first, it runs after
// every other cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
}

// startNode runs a tether node in this process on a free loopback port
// with its data in a temporary directory, and returns its base URL.
func startNode(t *testing.T, cfg tether.Config) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	node, err := tether.New(cfg, tether.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(context.Background()); err != nil {
		node.Shutdown(context.Background())
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Shutdown(ctx)
	})
	return "http://" + node.Addr().String()
}

// cliRun runs a tether command in this process (as the binary's run
// does, minus serve) and returns what it wrote.
func cliRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err = runCmd(ctx, args, &out, &errb)
	return out.String(), errb.String(), err
}

// cliOK is cliRun that must succeed; it returns stdout.
func cliOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, err := cliRun(t, args...)
	if err != nil {
		t.Fatalf("tether %s: %v\nstderr: %s", strings.Join(args, " "), err, errs)
	}
	return out
}

// cliFails is cliRun that must fail with an error containing each of want.
func cliFails(t *testing.T, want []string, args ...string) {
	t.Helper()
	_, _, err := cliRun(t, args...)
	if err == nil {
		t.Fatalf("tether %s succeeded, want an error with %q", strings.Join(args, " "), want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("tether %s: error %q, want it to contain %q", strings.Join(args, " "), err, w)
		}
	}
}

// jsonLines decodes each line of out.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		rows = append(rows, m)
	}
	return rows
}

// httpPost posts body to base+path and decodes the answer into out.
func httpPost(t *testing.T, base, path, body string, out any) {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", path, resp.Status, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCLIPublishAndTail(t *testing.T) {
	checkLeaks(t)
	base := startNode(t, tether.Config{})
	if out := cliOK(t, "publish", "--server", base, "news", `{"n":1}`); out != "news: cursor 1\n" {
		t.Fatalf("publish: %q", out)
	}
	// Flags after the arguments, --json, a message from stdin.
	out := cliOK(t, "publish", "news", `{"n":2}`, "--server", base, "--json")
	if rows := jsonLines(t, out); len(rows) != 1 || rows[0]["cursor"] != "2" || rows[0]["channel"] != "news" || rows[0]["duplicate"] != false {
		t.Fatalf("publish --json: %q", out)
	}
	stdin = strings.NewReader(`{"n": 3}`)
	t.Cleanup(func() { stdin = os.Stdin })
	cliOK(t, "publish", "--server", base, "news", "-")
	// The same idempotency key twice appends once.
	cliOK(t, "publish", "--server", base, "--idempotency-key", "k1", "news", `{"n":4}`)
	if out := cliOK(t, "publish", "--server", base, "--idempotency-key", "k1", "news", `{"n":4}`); !strings.Contains(out, "cursor 4") || !strings.Contains(out, "nothing appended") {
		t.Fatalf("repeated publish: %q", out)
	}

	out = cliOK(t, "tail", "news", "--server", base, "--after", "0", "--count", "4")
	if want := "1\t{\"n\":1}\n2\t{\"n\":2}\n3\t{\"n\":3}\n4\t{\"n\":4}\n"; out != want {
		t.Fatalf("tail: got %q, want %q", out, want)
	}
	out = cliOK(t, "tail", "--json", "--server", base, "--after", "2", "--count", "2", "news")
	rows := jsonLines(t, out)
	if len(rows) != 2 || rows[0]["cursor"] != "3" || rows[1]["cursor"] != "4" || rows[1]["channel"] != "news" || rows[0]["time"] == nil {
		t.Fatalf("tail --json --after 2: %q", out)
	}
	if d, _ := json.Marshal(rows[1]["data"]); string(d) != `{"n":4}` {
		t.Fatalf("tail --json data: %s", d)
	}
	// Without --after, tail prints only what comes next.
	done := make(chan string, 1)
	go func() {
		out, _, _ := cliRun(t, "tail", "--server", base, "--count", "1", "news")
		done <- out
	}()
	waitFor(t, 30*time.Second, "tail to subscribe", func() bool { return strings.Contains(cliOK(t, "connections", "ls", "--server", base), "news") })
	// The connection lists the channel a moment before its subscription
	// has fixed where "now" is: publish until tail has one, and check it is
	// a new one (none of the four above) and the only line.
	var tailed string
	for tailed == "" {
		cliOK(t, "publish", "--server", base, "news", `"fifth"`)
		select {
		case tailed = <-done:
		case <-time.After(200 * time.Millisecond):
		}
	}
	cursor, data, ok := strings.Cut(strings.TrimSuffix(tailed, "\n"), "\t")
	if n, err := strconv.Atoi(cursor); !ok || err != nil || n < 5 || data != `"fifth"` || strings.Count(tailed, "\n") != 1 {
		t.Fatalf("tail of new messages: %q", tailed)
	}

	if out := cliOK(t, "publish", "--server", base, "counter", "--", "-1"); out != "counter: cursor 1\n" {
		t.Fatalf("publish of -1 after --: %q", out)
	}
	cliFails(t, []string{"bad_channel", "bad ch"}, "publish", "--server", base, "bad ch", "1")
	cliFails(t, []string{"not one JSON value"}, "publish", "--server", base, "news", "nojson")
	cliFails(t, []string{"missing CHANNEL"}, "publish", "--server", base)
	cliFails(t, []string{"cursor_ahead"}, "tail", "--server", base, "--after", "99", "news")
	cliFails(t, []string{"bad_cursor"}, "tail", "--server", base, "--after", "nope", "news")
}

func TestCLIJobs(t *testing.T) {
	checkLeaks(t)
	base := startNode(t, tether.Config{})
	var a, b struct{ ID string }
	httpPost(t, base, "/v1/jobs", `{"type":"resize","payload":{"src":"a.png"}}`, &a)
	httpPost(t, base, "/v1/jobs", `{"type":"mail","max_attempts":5}`, &b)

	out := cliOK(t, "jobs", "ls", "--server", base)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "STATE") ||
		!strings.HasPrefix(lines[1], b.ID) || !strings.HasPrefix(lines[2], a.ID) || !strings.Contains(lines[1], "queued") || !strings.Contains(lines[1], "0/5") {
		t.Fatalf("jobs ls (newest first):\n%s", out)
	}
	// The columns line up: every row has STATE where the header has it.
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "queued") {
			t.Fatalf("jobs ls: columns not aligned:\n%s", out)
		}
	}
	rows := jsonLines(t, cliOK(t, "jobs", "ls", "--server", base, "--json", "--limit", "1"))
	if len(rows) != 1 || rows[0]["id"] != b.ID || rows[0]["type"] != "mail" {
		t.Fatalf("jobs ls --json --limit 1: %v", rows)
	}

	out = cliOK(t, "jobs", "show", a.ID, "--server", base)
	for _, want := range []string{"id ", a.ID, "state ", "queued", `{"src":"a.png"}`, "job." + a.ID} {
		if !strings.Contains(out, want) {
			t.Fatalf("jobs show: no %q in\n%s", want, out)
		}
	}
	if out := cliOK(t, "jobs", "cancel", a.ID, "--server", base); out != "job "+a.ID+": canceled (api)\n" {
		t.Fatalf("jobs cancel: %q", out)
	}
	rows = jsonLines(t, cliOK(t, "jobs", "show", "--json", "--server", base, a.ID))
	if len(rows) != 1 || rows[0]["state"] != "canceled" {
		t.Fatalf("jobs show --json after cancel: %v", rows)
	}
	rows = jsonLines(t, cliOK(t, "jobs", "ls", "--server", base, "--json", "--state", "canceled"))
	if len(rows) != 1 || rows[0]["id"] != a.ID {
		t.Fatalf("jobs ls --state canceled: %v", rows)
	}
	cliFails(t, []string{"not_found", "404"}, "jobs", "show", "01nosuchjob", "--server", base)
	cliFails(t, []string{"bad_request"}, "jobs", "ls", "--state", "sleeping", "--server", base)
	cliFails(t, []string{"unknown subcommand", "rm"}, "jobs", "rm", "x")
	cliFails(t, []string{"missing ID"}, "jobs", "show", "--server", base)
}

func TestCLIConnections(t *testing.T) {
	checkLeaks(t)
	base := startNode(t, tether.Config{})
	states := make(chan client.StateChange, 16)
	c, err := client.Dial(context.Background(), base, client.Config{OnState: func(sc client.StateChange) {
		select {
		case states <- sc:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Subscribe(context.Background(), "room", client.SubscribeOptions{After: "0"}); err != nil {
		t.Fatal(err)
	}
	rows := jsonLines(t, cliOK(t, "connections", "ls", "--json", "--server", base))
	var id string
	for _, r := range rows {
		if r["transport"] == "websocket" {
			id, _ = r["id"].(string)
		}
	}
	if id == "" {
		t.Fatalf("connections ls --json: no websocket in %v", rows)
	}
	out := cliOK(t, "connections", "ls", "--server", base)
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, id) || !strings.Contains(out, "websocket") || !strings.Contains(out, "room") {
		t.Fatalf("connections ls:\n%s", out)
	}
	for len(states) > 0 {
		<-states
	}
	if out := cliOK(t, "connections", "close", id, "--mode", "reset", "--server", base); out != "connection "+id+": reset\n" {
		t.Fatalf("connections close: %q", out)
	}
	deadline := time.After(30 * time.Second)
	for sc := (client.StateChange{}); sc.State != client.StateDisconnected; {
		select {
		case sc = <-states:
		case <-deadline:
			t.Fatal("the client did not see its connection end")
		}
	}
	cliFails(t, []string{"no_connection", "404"}, "connections", "close", "nosuchconnection", "--server", base)
	cliFails(t, []string{"bad_mode", "400"}, "connections", "close", id, "--mode", "gentle", "--server", base)
}

// With access control: the token flag and TETHER_TOKEN, tokens made by
// tether token, and the server's codes for a missing or weak token.
func TestCLITokenAndAccessControl(t *testing.T) {
	checkLeaks(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("a-secret-of-more-than-32-bytes-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret, _ := os.ReadFile(secretFile)
	base := startNode(t, tether.Config{Tokens: authConfig(secret)})
	admin := strings.TrimSpace(cliOK(t, "token", "--secret-file", secretFile, "--sub", "root", "--admin"))
	alice := strings.TrimSpace(cliOK(t, "token", "--secret-file", secretFile, "--sub", "alice", "--publish", "news", "--subscribe", "news"))

	cliFails(t, []string{"unauthorized", "401"}, "connections", "ls", "--server", base)
	cliFails(t, []string{"forbidden", "403"}, "connections", "ls", "--server", base, "--token", alice)
	cliOK(t, "connections", "ls", "--server", base, "--token", admin)
	t.Setenv("TETHER_TOKEN", admin)
	t.Setenv("TETHER_SERVER", base)
	cliOK(t, "connections", "ls")
	cliOK(t, "jobs", "ls")
	// The flag beats the environment.
	cliFails(t, []string{"forbidden"}, "connections", "ls", "--token", alice)

	cliFails(t, []string{"unauthorized"}, "publish", "--token", "", "news", "1")
	cliFails(t, []string{"forbidden"}, "publish", "--token", alice, "other", "1")
	if out := cliOK(t, "publish", "--token", alice, "news", `"hi"`); out != "news: cursor 1\n" {
		t.Fatalf("publish with a token: %q", out)
	}
	cliFails(t, []string{"forbidden"}, "tail", "--token", alice, "--after", "0", "other")
	if out := cliOK(t, "tail", "--token", alice, "--after", "0", "--count", "1", "news"); out != "1\t\"hi\"\n" {
		t.Fatalf("tail with a token: %q", out)
	}
}

// A server that does not answer: a progress line after a second, then a
// clear error at --timeout.
func TestCLIProgressWhileWaiting(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	start := time.Now()
	_, stderr, err := cliRun(t, "publish", "--server", dead, "--timeout", "2500ms", "news", "1")
	if err == nil || !strings.Contains(err.Error(), "not connected to "+dead) {
		t.Fatalf("publish to no server: %v", err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("publish gave up after %v, before --timeout", took)
	}
	if !strings.Contains(stderr, "tether: waiting for the server at "+dead) || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("no progress line naming the wait and its cause: %q", stderr)
	}
	_, _, err = cliRun(t, "jobs", "ls", "--server", dead)
	if err == nil || !strings.Contains(err.Error(), "no answer from "+dead) {
		t.Fatalf("jobs ls of no server: %v", err)
	}
}

func TestCLIVersion(t *testing.T) {
	rows := jsonLines(t, cliOK(t, "version", "--json"))
	if len(rows) != 1 || rows[0]["go"] != runtime.Version() || rows[0]["version"] == "" || rows[0]["platform"] != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("version --json: %v", rows)
	}
	bi := fromBuildInfo(&debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-11-28T00:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}, true)
	if bi.Version != "v1.2.3" || bi.Commit != "abc123" || !bi.Modified || bi.Go != "go1.99" || bi.CommitTime != "2026-11-28T00:00:00Z" {
		t.Fatalf("fromBuildInfo: %+v", bi)
	}
	// The binary: its -ldflags version, the Go version, and the commit
	// when Go stamped one.
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runBinary(bin, "version")
	if err != nil {
		t.Fatalf("tether version: %v\n%s", err, out)
	}
	for _, want := range []string{"tether    " + testVersion, "go        " + runtime.Version(), "commit "} {
		if !strings.Contains(out, want) {
			t.Fatalf("tether version: no %q in\n%s", want, out)
		}
	}
}

// Each command explains itself with -h and succeeds.
func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"publish", "-h"}, {"tail", "-h"}, {"jobs", "-h"}, {"jobs", "ls", "-h"}, {"jobs", "show", "-h"},
		{"jobs", "cancel", "-h"}, {"connections", "-h"}, {"connections", "ls", "-h"}, {"connections", "close", "-h"},
		{"version", "-h"}, {"config", "-h"}, {"config", "check", "-h"}, {"token", "-h"},
	} {
		out, stderr, err := cliRun(t, args...)
		if err != nil || out != "" || !strings.Contains(stderr, "usage: tether") {
			t.Errorf("tether %s: err %v, stdout %q, stderr %q", strings.Join(args, " "), err, out, stderr)
		}
		client := args[0] == "publish" || args[0] == "tail" || args[0] == "jobs" || args[0] == "connections"
		if client && args[1] != "-h" && !strings.Contains(stderr, "-server") {
			t.Errorf("tether %s: usage without --server:\n%s", strings.Join(args, " "), stderr)
		}
	}
}

// The binary exits non-zero with the server's code on stderr.
func TestCLIExitCode(t *testing.T) {
	base := startNode(t, tether.Config{})
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runBinary(bin, "jobs", "show", "01nosuchjob", "--server", base)
	if code := exitCode(err); code != 1 || !strings.Contains(out, "tether: jobs: not_found (HTTP 404): ") {
		t.Fatalf("exit code %d, output %q", code, out)
	}
	out, err = runBinary(bin, "frobnicate")
	if code := exitCode(err); code != 1 || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit code %d, output %q", code, out)
	}
	if out, err := runBinary(bin, "publish", "--server", base, "news", `{"a":1}`); err != nil || out != "news: cursor 1\n" {
		t.Fatalf("publish: %v %q", err, out)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		return ee.ExitCode()
	}
	return -1
}

func TestCLIUsageListsEveryCommand(t *testing.T) {
	for _, cmd := range []string{"serve", "config defaults", "config check", "token", "publish", "tail", "jobs", "connections", "version"} {
		if !strings.Contains(usage, "  "+cmd) {
			t.Errorf("usage does not list %s", cmd)
		}
	}
}

// runBinary runs the built tether and returns its combined output.
func runBinary(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func authConfig(secret []byte) auth.Config { return auth.Config{Secret: secret} }

// A token that expires while tail follows ends tail with the server's
// code, instead of reconnecting to be refused again and again.
func TestCLITailTokenExpires(t *testing.T) {
	checkLeaks(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("a-secret-of-more-than-32-bytes-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret, _ := os.ReadFile(secretFile)
	base := startNode(t, tether.Config{Tokens: authConfig(secret)})
	tok := strings.TrimSpace(cliOK(t, "token", "--secret-file", secretFile, "--sub", "bob", "--subscribe", "news", "--ttl", "3s"))
	start := time.Now()
	_, _, err := cliRun(t, "tail", "--server", base, "--token", tok, "news")
	if err == nil || !strings.Contains(err.Error(), "token_expired") {
		t.Fatalf("tail with an expiring token: %v", err)
	}
	t.Logf("tail ended %v after it started: %v", time.Since(start).Round(time.Millisecond), err)
}

// A running job: jobs ls shows its worker, jobs cancel asks its worker to
// stop, and the job ends canceled once the handler returned.
func TestCLIJobsCancelRunning(t *testing.T) {
	checkLeaks(t)
	base := startNode(t, tether.Config{})
	w, err := worker.New(worker.Config{URL: base, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	w.Handle("block", func(ctx context.Context, job *worker.Job) (any, error) {
		started <- struct{}{}
		<-ctx.Done() // until the cancel reaches it
		return nil, ctx.Err()
	})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() { stop(); <-ran }()

	var j struct{ ID string }
	httpPost(t, base, "/v1/jobs", `{"type":"block"}`, &j)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not start")
	}
	var workerName string
	waitFor(t, 30*time.Second, "the job to show running", func() bool {
		rows := jsonLines(t, cliOK(t, "jobs", "show", "--json", j.ID, "--server", base))
		workerName, _ = rows[0]["worker"].(string)
		return rows[0]["state"] == "running" && workerName != ""
	})
	out := cliOK(t, "jobs", "ls", "--server", base, "--state", "running")
	if !strings.Contains(out, j.ID) || !strings.Contains(out, "running") || !strings.Contains(out, "1/3") || !strings.Contains(out, workerName) {
		t.Fatalf("jobs ls of a running job (worker %s):\n%s", workerName, out)
	}
	// The answer is the job as the cancel left it: running, its worker told.
	out = cliOK(t, "jobs", "cancel", j.ID, "--server", base)
	if want := "job " + j.ID + ": cancel requested; its worker " + workerName + " is told"; !strings.HasPrefix(out, want) {
		t.Fatalf("jobs cancel of a running job: %q, want %q...", out, want)
	}
	waitFor(t, 30*time.Second, "the job to end canceled", func() bool {
		return strings.Contains(cliOK(t, "jobs", "show", j.ID, "--server", base), "canceled")
	})
}

// Messages retention removed are a gap, said, never skipped silently: a
// JSON line of its own with --json, a line on stderr otherwise.
func TestCLITailGap(t *testing.T) {
	checkLeaks(t)
	cfg := tether.Config{}
	cfg.Retention.MaxMessages = 2
	base := startNode(t, cfg)
	for i := range 5 {
		httpPost(t, base, "/v1/channels/short/messages", fmt.Sprintf(`{"i":%d}`, i), nil)
	}
	// After cursor 1: 2 and 3 are gone.
	rows := jsonLines(t, cliOK(t, "tail", "--json", "--server", base, "--after", "1", "--count", "2", "short"))
	if len(rows) != 3 || rows[0]["gap"] != true || rows[0]["after"] != "1" || rows[1]["cursor"] != "4" || rows[2]["cursor"] != "5" {
		t.Fatalf("tail --json across a gap: %v", rows)
	}
	out, stderr, err := cliRun(t, "tail", "--server", base, "--after", "1", "--count", "2", "short")
	if err != nil || out != "4\t{\"i\":3}\n5\t{\"i\":4}\n" || !strings.Contains(stderr, "tether: gap: retention removed messages after cursor 1") {
		t.Fatalf("tail across a gap: %v %q %q", err, out, stderr)
	}
}
