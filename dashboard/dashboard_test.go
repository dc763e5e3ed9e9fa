package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/dashboard"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("0123456789abcdef0123456789abcdef-dashboard")

// startNode runs a real node on 127.0.0.1:0 (HTTP and TCP) with its data
// in a temp dir; secure turns tokens on.
func startNode(t *testing.T, secure bool) (*tether.Node, string) {
	t.Helper()
	cfg := tether.Config{Addr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", DataDir: t.TempDir()}
	if secure {
		cfg.Tokens.Secret = secret
	}
	cfg.Session.QueueBytes = 4 << 10
	cfg.Session.MaxLag = time.Minute
	n, err := tether.New(cfg, tether.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n, "http://" + n.Addr().String()
}

func sign(t *testing.T, sub string, perm auth.Permissions) string {
	t.Helper()
	c := auth.Claims{Tether: perm}
	c.Subject = sub
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	tok, err := auth.Sign(secret, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func get(t *testing.T, method, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp, nil // the stream is read elsewhere
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("body %q is not the JSON error {error: {code, message}}: %v", body, err)
	}
	return e.Error.Code
}

// The page loads without a token; the data needs the admin permission:
// 401 without a token, 403 forbidden for a token without admin, 200 with.
func TestAdminPermission(t *testing.T) {
	_, base := startNode(t, true)
	admin := sign(t, "root", auth.Permissions{Admin: true})
	user := sign(t, "alice", auth.Permissions{Subscribe: []string{">"}, Publish: []string{">"}, Jobs: []string{"*"}})

	resp, body := get(t, "GET", base+"/admin", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>tether dashboard</title>") {
		t.Fatalf("GET /admin = %d %q, want the page", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("page CSP = %q", csp)
	}
	for _, f := range []string{"/admin/app.js", "/admin/app.css", "/admin/icon.svg"} {
		if resp, _ := get(t, "GET", base+f, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d, want 200", f, resp.StatusCode)
		}
	}

	for _, path := range []string{"/v1/admin/snapshot", "/v1/admin/events"} {
		resp, body := get(t, "GET", base+path, "")
		if resp.StatusCode != 401 || errCode(t, body) != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without a token = %d %s, want 401 unauthorized with WWW-Authenticate", path, resp.StatusCode, body)
		}
		resp, body = get(t, "GET", base+path, user)
		if resp.StatusCode != 403 || errCode(t, body) != "forbidden" {
			t.Errorf("%s with a non-admin token = %d %s, want 403 forbidden", path, resp.StatusCode, body)
		}
		resp, body = get(t, "GET", base+path, "not-a-token")
		if resp.StatusCode != 401 || errCode(t, body) != "unauthorized" {
			t.Errorf("%s with a bad token = %d %s, want 401 unauthorized", path, resp.StatusCode, body)
		}
	}
	for _, f := range []string{"/admin/nothing.js", "/admin/index.html", "/admin/", "/admin/ui/app.js"} {
		if resp, body := get(t, "GET", base+f, ""); resp.StatusCode != 404 || errCode(t, body) != "not_found" {
			t.Errorf("GET %s = %d %s, want the JSON 404", f, resp.StatusCode, body)
		}
	}
	resp, body = get(t, "GET", base+"/v1/admin/snapshot", admin)
	var s dashboard.Snapshot
	if resp.StatusCode != 200 || json.Unmarshal(body, &s) != nil || s.Open || s.Time.IsZero() {
		t.Fatalf("snapshot with an admin token = %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, "POST", base+"/v1/admin/snapshot", admin); resp.StatusCode != 405 || errCode(t, body) != "method_not_allowed" {
		t.Errorf("POST snapshot = %d %s, want 405", resp.StatusCode, body)
	}
	if resp, body := get(t, "GET", base+"/v1/admin/nothing", admin); resp.StatusCode != 404 || errCode(t, body) != "not_found" {
		t.Errorf("GET /v1/admin/nothing = %d %s, want 404", resp.StatusCode, body)
	}
}

// snapshot reads GET /v1/admin/snapshot (open mode).
func snapshot(t *testing.T, base string) dashboard.Snapshot {
	t.Helper()
	resp, body := get(t, "GET", base+"/v1/admin/snapshot", "")
	var s dashboard.Snapshot
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot = %d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitSnap polls the snapshot until cond holds, against a deadline.
func waitSnap(t *testing.T, base, what string, cond func(s dashboard.Snapshot) bool) dashboard.Snapshot {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := snapshot(t, base)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(s)
			t.Fatalf("timed out waiting for %s; last snapshot %s", what, b)
		}
		time.Sleep(50 * time.Millisecond) // polling interval against the deadline, not synchronisation
	}
}

func endCount(s dashboard.Snapshot, transport, reason string) uint64 {
	for _, e := range s.Ends.Totals {
		if string(e.Transport) == transport && string(e.Reason) == reason {
			return e.Count
		}
	}
	return 0
}

// dialSmall connects with a small receive buffer, set before the
// handshake so that the window stays small: a reader that stops reading
// backs the server up quickly.
func dialSmall(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

// The snapshot follows the node: connections by transport and user,
// channels with their subscribers, rate and presence, a consumer that
// stops reading falls behind, ends counted by reason (a WebSocket closed
// cleanly, a TCP connection reset), and a job on a real worker with its
// cancel.
func TestSnapshotFollowsTheNode(t *testing.T) {
	n, base := startNode(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A WebSocket subscriber that reads, and a TCP one that never reads.
	ws, _, err := websocket.Dial(ctx, "ws://"+n.Addr().String()+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":"1","type":"subscribe","channel":"news"}`)); err != nil {
		t.Fatal(err)
	}
	wsDone := make(chan struct{})
	go func() {
		defer close(wsDone)
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}()
	tc := dialSmall(t, n.TCPAddr().String())
	defer tc.Close()
	if _, err := io.WriteString(tc, `{"id":"1","type":"subscribe","channel":"news"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	// Read the reply only, then never again.
	if line, err := bufio.NewReaderSize(tc, 16).ReadString('\n'); err != nil || !strings.Contains(line, `"ok":true`) {
		t.Fatalf("subscribe reply %q, %v", line, err)
	}

	s := waitSnap(t, base, "two subscribers of news", func(s dashboard.Snapshot) bool {
		// The parts of a snapshot are read one after the other: wait
		// for both to see both connections.
		return len(s.Channels) == 1 && s.Channels[0].Subscribers == 2 && s.Connections.Total == 2
	})
	if s.Connections.ByTransport["websocket"] != 1 || s.Connections.ByTransport["tcp"] != 1 || len(s.Connections.Users) != 1 {
		t.Errorf("connections = %+v, want one websocket and one tcp of one (open) user", s.Connections)
	}
	if ch := s.Channels[0]; ch.Channel != "news" || len(ch.Presence) != 2 || ch.ByTransport["tcp"] != 1 {
		t.Errorf("channel = %+v, want news with both subscriptions present", ch)
	}

	// Publish until the TCP consumer falls behind.
	payload := []byte(`"` + strings.Repeat("x", 32<<10) + `"`)
	published := 0
	s = waitSnap(t, base, "the TCP consumer to lag", func(s dashboard.Snapshot) bool {
		for range 20 {
			if _, err := n.Publish(ctx, "news", payload, tether.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
			published++
		}
		return len(s.Consumers) > 0 && s.Consumers[0].Transport == "tcp" && s.Consumers[0].Lag > 0 && s.Consumers[0].Queued > 0
	})
	t.Logf("lag %v with %d KiB queued after %d messages of 32 KiB", s.Consumers[0].Lag, s.Consumers[0].Queued>>10, published)
	if len(s.Consumers) != 2 || s.Consumers[1].Transport != "websocket" {
		t.Errorf("consumers = %+v, want the lagging tcp one first, then the websocket", s.Consumers)
	}
	s = waitSnap(t, base, "a rate for news", func(s dashboard.Snapshot) bool {
		return len(s.Channels) == 1 && s.Channels[0].Rate != nil && s.Channels[0].Latest != "" && !s.Channels[0].Oldest.IsZero()
	})

	// End them: the WebSocket closes cleanly, the TCP connection resets.
	ws.Close(websocket.StatusNormalClosure, "bye")
	<-wsDone
	tc.SetLinger(0)
	tc.Close()
	s = waitSnap(t, base, "both ends counted", func(s dashboard.Snapshot) bool {
		return endCount(s, "websocket", "closed") == 1 && endCount(s, "tcp", "reset") == 1 && s.Connections.Total == 0
	})
	if len(s.Ends.Recent) == 0 {
		t.Errorf("no recent ends: %+v", s.Ends)
	}

	// A job on a real worker (package worker, over WebSocket), cancelled.
	w, err := worker.New(worker.Config{URL: "ws://" + n.Addr().String(), ID: "w-dash", Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	started, stopped := make(chan string, 1), make(chan error, 1)
	w.Handle("block", func(ctx context.Context, job *worker.Job) (any, error) {
		started <- job.ID
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, ctx.Err()
	})
	wctx, wcancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(wctx) }()
	defer func() { wcancel(); <-ran }()
	resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader(`{"type":"block","on_disconnect":"detach"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := <-started
	s = waitSnap(t, base, "the job running on its worker", func(s dashboard.Snapshot) bool {
		return s.Jobs != nil && s.Jobs.States["running"] == 1 && len(s.Jobs.Workers) == 1 && len(s.Jobs.Workers[0].Running) == 1
	})
	if wi := s.Jobs.Workers[0]; wi.ID != "w-dash" || wi.Running[0].Job != id || wi.Running[0].Type != "block" || wi.Concurrency != 2 {
		t.Errorf("worker = %+v, want w-dash running %s", wi, id)
	}
	if j := s.Jobs.Jobs[0]; j.ID != id || j.Worker != "w-dash" || j.Attempt != 1 {
		t.Errorf("job = %+v, want %s attempt 1 on w-dash", j, id)
	}
	resp, err = http.Post(base+"/v1/jobs/"+id+"/cancel", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-stopped; err == nil {
		t.Error("the handler's context ended without an error")
	}
	s = waitSnap(t, base, "the job canceled", func(s dashboard.Snapshot) bool {
		return s.Jobs.States["canceled"] == 1 && s.Jobs.States["running"] == 0 && len(s.Jobs.Workers[0].Running) == 0
	})
	if len(s.Jobs.Jobs) != 1 || s.Jobs.Jobs[0].ID != id || s.Jobs.Jobs[0].State != "canceled" {
		t.Errorf("jobs = %+v, want %s canceled", s.Jobs.Jobs, id)
	}
}

// The event stream sends snapshots, and ends with a shutdown event when
// the node stops.
func TestEventsEndOnShutdown(t *testing.T) {
	n, base := startNode(t, false)
	resp, err := http.Get(base + "/v1/admin/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events = %d %s", resp.StatusCode, ct)
	}
	r := bufio.NewReader(resp.Body)
	event := func() (string, string) {
		var ev, data string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the stream: %v (event %q)", err, ev)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				return ev, data
			case strings.HasPrefix(line, "event: "):
				ev = line[7:]
			case strings.HasPrefix(line, "data: "):
				data += line[6:]
			}
		}
	}
	var times []time.Time
	for range 2 {
		ev, data := event()
		var s dashboard.Snapshot
		if ev != "snapshot" || json.Unmarshal([]byte(data), &s) != nil {
			t.Fatalf("event %q %q, want a snapshot", ev, data)
		}
		times = append(times, s.Time)
	}
	if !times[1].After(times[0]) {
		t.Errorf("second snapshot not newer: %v", times)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- n.Shutdown(ctx)
	}()
	for {
		ev, _ := event()
		if ev == "shutdown" {
			break
		}
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("after the shutdown event: %v, want EOF", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// At most MaxStreams event streams are open at once; the next is refused
// with 503 unavailable until one ends.
func TestStreamsBounded(t *testing.T) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := session.New(session.Config{}, st, reg, nil, session.Access{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dashboard.New(dashboard.Config{MaxStreams: -1}, core, nil, nil); err == nil {
		t.Error("New with MaxStreams -1: no error")
	}
	d, err := dashboard.New(dashboard.Config{MaxStreams: 1, Interval: 20 * time.Millisecond}, core, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d)
	defer srv.Close()

	first, err := http.Get(srv.URL + "/v1/admin/events")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(first.Body)
	for range 3 { // three events, Interval apart
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		r.ReadString('\n')
		r.ReadString('\n')
	}
	resp, body := get(t, "GET", srv.URL+"/v1/admin/events", "")
	if resp.StatusCode != http.StatusServiceUnavailable || errCode(t, body) != "unavailable" {
		t.Errorf("a second stream = %d %s, want 503 unavailable", resp.StatusCode, body)
	}
	first.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(srv.URL + "/v1/admin/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream admitted after the first ended: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // polling interval against the deadline
	}
}
