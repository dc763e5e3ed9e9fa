package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/jobstest"
	"github.com/tether-run/tether/jobs/workerproto"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
)

// jobsEnv is the API with a jobs service on a real Pebble store, served on
// a conn.Listen listener on 127.0.0.1:0, as the server assembles it.
type jobsEnv struct {
	t    *testing.T
	svc  *jobs.Service
	reg  *prometheus.Registry
	addr string
	base string
}

func startJobsEnv(t *testing.T) *jobsEnv {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := jobs.New(jobs.Config{HeartbeatInterval: 100 * time.Millisecond,
		CancelGrace: 300 * time.Millisecond, FollowGrace: 300 * time.Millisecond,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	conns, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	core, err := session.New(session.Config{}, st, conns, log, session.Access{}, workerproto.New(svc))
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(Config{}, core, svc, reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := conn.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: api, ConnContext: conn.ConnContext}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conns.Shutdown(ctx, 0)
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
		}
		<-served
		svc.Stop(ctx)
		st.Close()
	})
	return &jobsEnv{t: t, svc: svc, reg: reg, addr: ln.Addr().String(), base: "http://" + ln.Addr().String()}
}

type tlog struct{ t *testing.T }

func (w tlog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (env *jobsEnv) attach(cfg jobstest.Config) *jobstest.Worker {
	env.t.Helper()
	cfg.Heartbeat = 100 * time.Millisecond
	w, err := jobstest.Attach(env.svc, cfg)
	if err != nil {
		env.t.Fatal(err)
	}
	env.t.Cleanup(func() { w.Close(false) })
	return w
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (env *jobsEnv) do(method, path, body string, hdr map[string]string, out any) *http.Response {
	env.t.Helper()
	req, _ := http.NewRequestWithContext(env.t.Context(), method, env.base+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			env.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp
}

// ends is how many requests of route ended with reason.
func (env *jobsEnv) ends(route, reason string) float64 {
	mfs, _ := env.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "tether_http_request_ends_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var r, rs string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					r = l.GetValue()
				case "reason":
					rs = l.GetValue()
				}
			}
			if r == route && rs == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition against a deadline
	}
}

// rawPost opens a TCP connection and sends a POST without reading the
// answer, so the test can half-close or reset it.
func rawPost(t *testing.T, addr, path, body string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: tether\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	return c.(*net.TCPConn)
}

// blockingHandler reports each start on started and runs until its context
// ends or release closes.
func blockingHandler(started chan<- jobs.Assignment, release <-chan struct{}) jobstest.Handler {
	return func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		started <- a
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
			return json.RawMessage(`{"done":true}`), nil
		}
	}
}

func (env *jobsEnv) await(id string) jobs.Job {
	env.t.Helper()
	ctx, cancel := context.WithTimeout(env.t.Context(), 10*time.Second)
	defer cancel()
	j, err := env.svc.Await(ctx, id)
	if err != nil {
		env.t.Fatalf("Await %s: %v (%+v)", id, err, j)
	}
	return j
}

// A wait request whose client resets its connection cancels its
// on_disconnect=cancel job: the handler's context ends, the job is
// canceled with reason client-gone.
func TestJobWaitResetCancels(t *testing.T) {
	env := startJobsEnv(t)
	started := make(chan jobs.Assignment, 1)
	w := env.attach(jobstest.Config{Handler: blockingHandler(started, nil)})
	c := rawPost(t, env.addr, "/v1/jobs?wait=60s", `{"type":"render","payload":{"n":1},"on_disconnect":"cancel"}`)
	a := <-started
	c.SetLinger(0)
	c.Close()
	eventually(t, 5*time.Second, "the reset is noticed", func() bool { return env.ends("jobs.create", "reset") == 1 })
	j := env.await(a.JobID)
	if j.State != jobs.Canceled || j.CancelReason != jobs.ReasonClientGone {
		t.Fatalf("job after the reset: %+v; want canceled, client-gone", j)
	}
	if cs := w.Cancels(); len(cs) != 1 || cs[0].Reason != jobs.ReasonClientGone {
		t.Fatalf("worker cancels %+v; want one, client-gone", cs)
	}
	w.WaitFor(5*time.Second, func(w *jobstest.Worker) bool { return len(w.Dones()) == 1 })
	if d := w.Dones(); len(d) != 1 || !d[0].Canceled {
		t.Fatalf("worker dones %+v; want the handler cancelled", d)
	}
	if n := env.ends("jobs.create", "reset"); n != 1 {
		t.Fatalf("jobs.create ends with reset = %v; want 1", n)
	}
}

// A wait request whose client half-closes (sends its request, then FIN, and
// keeps reading) is still there: its job runs and it gets the answer.
func TestJobWaitHalfCloseAnswered(t *testing.T) {
	env := startJobsEnv(t)
	started := make(chan jobs.Assignment, 1)
	release := make(chan struct{})
	w := env.attach(jobstest.Config{Handler: blockingHandler(started, release)})
	c := rawPost(t, env.addr, "/v1/jobs?wait=60s", `{"type":"render","on_disconnect":"cancel"}`)
	defer c.Close()
	a := <-started
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The server sees the FIN and probes with an informational response;
	// reading it proves the half-close was noticed before the job ended.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusProcessing {
		t.Fatalf("first response: %v, %v; want the 102 probe", resp, err)
	}
	close(release)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	var j jobs.Job
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || j.ID != a.JobID || j.State != jobs.Succeeded || string(j.Result) != `{"done":true}` {
		t.Fatalf("answer %d %+v; want 200 with the succeeded job", resp.StatusCode, j)
	}
	if len(w.Cancels()) != 0 {
		t.Fatalf("the half-closed client's job got cancels %+v", w.Cancels())
	}
}

// A detach job whose waiting client resets runs to the end; its result is
// readable later with GET /v1/jobs/{id}.
func TestJobDetachRunsAfterClientLeaves(t *testing.T) {
	env := startJobsEnv(t)
	started := make(chan jobs.Assignment, 1)
	release := make(chan struct{})
	w := env.attach(jobstest.Config{Handler: blockingHandler(started, release)})
	c := rawPost(t, env.addr, "/v1/jobs?wait=60s", `{"type":"render","on_disconnect":"detach"}`)
	a := <-started
	c.SetLinger(0)
	c.Close()
	eventually(t, 5*time.Second, "the reset is noticed", func() bool { return env.ends("jobs.create", "reset") == 1 })
	close(release)
	env.await(a.JobID)
	var j jobs.Job
	resp := env.do("GET", "/v1/jobs/"+a.JobID, "", nil, &j)
	if resp.StatusCode != http.StatusOK || j.State != jobs.Succeeded || string(j.Result) != `{"done":true}` || j.OnDisconnect != jobs.Detach {
		t.Fatalf("GET after the client left: %d %+v; want succeeded with the result", resp.StatusCode, j)
	}
	if len(w.Cancels()) != 0 {
		t.Fatalf("the detach job got cancels %+v", w.Cancels())
	}
}

// The plain endpoints: create, idempotent replay, get, list, cancel,
// waiting to the end, a wait that runs out, and the errors.
func TestJobsAPI(t *testing.T) {
	env := startJobsEnv(t)
	var ref struct{ ID, Channel string }
	resp := env.do("POST", "/v1/jobs", `{"type":"idle","payload":[1,2],"timeout":"1m","max_attempts":2}`,
		map[string]string{"Idempotency-Key": "k1"}, &ref)
	if resp.StatusCode != http.StatusCreated || ref.Channel != "job."+ref.ID {
		t.Fatalf("create: %d %+v", resp.StatusCode, ref)
	}
	var again struct{ ID string }
	resp = env.do("POST", "/v1/jobs", `{"type":"idle"}`, map[string]string{"Idempotency-Key": "k1"}, &again)
	if again.ID != ref.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %+v %v; want the same job, marked replayed", again, resp.Header)
	}
	var j jobs.Job
	if resp := env.do("GET", "/v1/jobs/"+ref.ID, "", nil, &j); resp.StatusCode != 200 || j.State != jobs.Queued ||
		j.Timeout != time.Minute || j.MaxAttempts != 2 || string(j.Payload) != `[1,2]` || j.OnDisconnect != jobs.Cancel {
		t.Fatalf("get: %d %+v", resp.StatusCode, j)
	}
	// A wait that runs out answers 202 with the id.
	var late struct{ ID, Channel string }
	if resp := env.do("POST", "/v1/jobs?wait=100ms", `{"type":"idle"}`, nil, &late); resp.StatusCode != http.StatusAccepted || late.ID == "" {
		t.Fatalf("wait ran out: %d %+v; want 202 with the id", resp.StatusCode, late)
	}
	var list struct{ Jobs []jobs.Job }
	if env.do("GET", "/v1/jobs?state=queued&limit=10", "", nil, &list); len(list.Jobs) != 2 || list.Jobs[0].ID != late.ID {
		t.Fatalf("list: %+v; want 2 queued, newest first", list)
	}
	if resp := env.do("POST", "/v1/jobs/"+ref.ID+"/cancel", "", nil, &j); resp.StatusCode != 200 || j.State != jobs.Canceled {
		t.Fatalf("cancel: %d %+v", resp.StatusCode, j)
	}
	if env.do("GET", "/v1/jobs?state=canceled", "", nil, &list); len(list.Jobs) != 1 || list.Jobs[0].ID != ref.ID {
		t.Fatalf("list canceled: %+v", list)
	}
	// Waiting to the end answers the job with its result.
	env.attach(jobstest.Config{Types: []string{"echo"}, Handler: func(ctx context.Context, a jobs.Assignment, _ func(string) error) (json.RawMessage, error) {
		return a.Payload, nil
	}})
	if resp := env.do("POST", "/v1/jobs?wait=30s", `{"type":"echo","payload":{"x":1}}`, nil, &j); resp.StatusCode != 200 ||
		j.State != jobs.Succeeded || string(j.Result) != `{"x":1}` {
		t.Fatalf("wait: %d %+v", resp.StatusCode, j)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/jobs/nope", "", 404, CodeNotFound},
		{"GET", "/v1/jobs/00000000000000000000000000", "", 404, CodeNotFound},
		{"POST", "/v1/jobs/nope/cancel", "", 404, CodeNotFound},
		{"POST", "/v1/jobs", `{"type":""}`, 400, CodeBadRequest},
		{"POST", "/v1/jobs", `{"type":"a b"}`, 400, CodeBadRequest},
		{"POST", "/v1/jobs", `{"type":"x","timeout":"soon"}`, 400, CodeBadRequest},
		{"POST", "/v1/jobs", `{"type":"x","on_disconnect":"maybe"}`, 400, CodeBadRequest},
		{"POST", "/v1/jobs", `not json`, 400, CodeInvalidJSON},
		{"POST", "/v1/jobs?wait=forever", `{"type":"x"}`, 400, CodeBadWait},
		{"GET", "/v1/jobs?state=lost", "", 400, CodeBadRequest},
		{"GET", "/v1/jobs?limit=0", "", 400, CodeBadLimit},
		{"DELETE", "/v1/jobs", "", 405, CodeMethodNotAllowed},
	} {
		var e struct{ Error apiError }
		resp := env.do(c.method, c.path, c.body, nil, &e)
		if resp.StatusCode != c.status || e.Error.Code != c.code {
			t.Errorf("%s %s %s: %d %q; want %d %q", c.method, c.path, c.body, resp.StatusCode, e.Error.Code, c.status, c.code)
		}
	}
}

// An SSE follower of an on_disconnect=cancel job that resets, with no new
// follower within the follow grace, cancels the job.
func TestJobSSEFollowerGoneCancels(t *testing.T) {
	env := startJobsEnv(t)
	var ref struct{ ID, Channel string }
	env.do("POST", "/v1/jobs", `{"type":"nobody"}`, nil, &ref)
	c, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /v1/channels/%s/events?after=0 HTTP/1.1\r\nHost: tether\r\n\r\n", ref.Channel)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SSE: %v, %v", resp, err)
	}
	for line := ""; !strings.Contains(line, `"event":"queued"`); {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	j := env.await(ref.ID)
	if j.State != jobs.Canceled || j.CancelReason != jobs.ReasonClientGone {
		t.Fatalf("job after its follower left: %+v", j)
	}
	if took := time.Since(t0); took < 300*time.Millisecond {
		t.Fatalf("canceled %v after the reset; before the 300ms follow grace", took)
	}
}

// A create with ?follow=true whose client never follows (gone between the
// answer and its subscription) cancels its on_disconnect=cancel job once
// the follow grace passes; one that follows in time keeps it; a create
// without it leaves the job for whoever comes later.
func TestJobCreateFollow(t *testing.T) {
	env := startJobsEnv(t)
	var gone, kept, plain struct{ ID, Channel string }
	t0 := time.Now()
	if resp := env.do("POST", "/v1/jobs?follow=true", `{"type":"nobody"}`, nil, &gone); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create ?follow=true: %d", resp.StatusCode)
	}
	env.do("POST", "/v1/jobs?follow=true", `{"type":"nobody"}`, nil, &kept)
	env.do("POST", "/v1/jobs", `{"type":"nobody"}`, nil, &plain)

	// kept's creator follows it over SSE, within the grace.
	c, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/channels/%s/events?after=0 HTTP/1.1\r\nHost: tether\r\n\r\n", kept.Channel)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("SSE: %v, %v", resp, err)
	}

	j := env.await(gone.ID)
	if j.State != jobs.Canceled || j.CancelReason != jobs.ReasonClientGone {
		t.Fatalf("job never followed: %+v; want canceled, client-gone", j)
	}
	if took := time.Since(t0); took < 300*time.Millisecond {
		t.Fatalf("canceled %v after the create; before the 300ms follow grace", took)
	}
	// Three graces after gone's cancel, the followed job and the plain one
	// still wait for a worker: nothing canceled them.
	deadline := time.Now().Add(900 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, id := range []string{kept.ID, plain.ID} {
			if j, err := env.svc.Get(t.Context(), id); err != nil || j.State.Final() {
				t.Fatalf("job %s: %+v, %v; want it still queued", id, j, err)
			}
		}
		time.Sleep(50 * time.Millisecond) // an observation window, not a wait for an event
	}
	if resp := env.do("POST", "/v1/jobs?follow=maybe", `{"type":"nobody"}`, nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("?follow=maybe: %d, want 400", resp.StatusCode)
	}
}
