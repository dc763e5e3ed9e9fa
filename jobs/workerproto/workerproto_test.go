package workerproto_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/workerproto"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
)

// jobNode is a node with a jobs.Service, serving the framed protocol over
// TCP on 127.0.0.1:0.
type jobNode struct {
	svc  *jobs.Service
	addr string
	tcp  *tcp.Server
	reg  *registry.Registry
}

func newJobNode(t *testing.T, withJobs bool, jc jobs.Config) *jobNode {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &jobNode{}
	var exts []session.Extension
	if withJobs {
		if jc.HeartbeatInterval == 0 {
			jc.HeartbeatInterval = 200 * time.Millisecond
		}
		jc.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
		if n.svc, err = jobs.New(jc, st, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := n.svc.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n.svc.Stop(ctx)
		})
		exts = append(exts, workerproto.New(n.svc))
	}
	if n.reg, err = registry.New(registry.Config{}); err != nil {
		t.Fatal(err)
	}
	core, err := session.New(session.Config{}, st, n.reg, nil, session.Access{}, exts...)
	if err != nil {
		t.Fatal(err)
	}
	if n.tcp, err = tcp.New(tcp.Config{Addr: "127.0.0.1:0"}, core); err != nil {
		t.Fatal(err)
	}
	if err := n.tcp.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.tcp.Stop(ctx)
	})
	n.addr = n.tcp.Addr().String()
	return n
}

type rawClient struct {
	*prototest.Client
	nc *net.TCPConn
}

func (n *jobNode) dial(t *testing.T) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc := c.(*net.TCPConn)
	t.Cleanup(func() { nc.Close() })
	sc := bufio.NewScanner(nc)
	sc.Buffer(nil, 4<<20)
	read := func() ([]byte, error) {
		if sc.Scan() {
			return append([]byte(nil), sc.Bytes()...), nil
		}
		if sc.Err() != nil {
			return nil, sc.Err()
		}
		return nil, net.ErrClosed
	}
	write := func(b []byte) { nc.Write(append(b, '\n')) }
	return &rawClient{Client: prototest.NewClient(t, read, write, true), nc: nc}
}

// nextOf returns the next frame of type typ, skipping others.
func nextOf(c *rawClient, typ string) prototest.Frame {
	for {
		if f := c.Next(); f.Str("type") == typ {
			return f
		}
	}
}

func (n *jobNode) create(t *testing.T, spec jobs.Spec) string {
	t.Helper()
	j, _, err := n.svc.Create(context.Background(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	return j.ID
}

func (n *jobNode) await(t *testing.T, id string) jobs.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := n.svc.Await(ctx, id)
	if err != nil {
		t.Fatalf("job %s not final within 20s: %v (%+v)", id, err, j)
	}
	return j
}

func TestWorkerWithoutJobs(t *testing.T) {
	n := newJobNode(t, false, jobs.Config{})
	c := n.dial(t)
	prototest.WantError(t, c.Request(map[string]any{"id": "1", "type": "worker", "worker": "w", "types": []string{"x"}}), "unknown_type")
}

func TestWorkerRequests(t *testing.T) {
	n := newJobNode(t, true, jobs.Config{})
	c := n.dial(t)
	// Job requests before the worker request.
	prototest.WantError(t, c.Request(map[string]any{"id": "1", "type": "job.done", "job": "x", "attempt": 1}), "not_worker")
	prototest.WantError(t, c.Request(map[string]any{"id": "2", "type": "drain"}), "not_worker")
	// Bad worker requests.
	prototest.WantError(t, c.Request(map[string]any{"id": "3", "type": "worker", "worker": "w"}), "bad_request")
	prototest.WantError(t, c.Request(map[string]any{"id": "4", "type": "worker", "types": []string{"a"}}), "bad_request")
	prototest.WantError(t, c.Request(map[string]any{"id": "5", "type": "worker", "worker": "w", "types": []string{"bad type!"}}), "bad_request")

	prototest.WantOK(t, c.Request(map[string]any{"id": "6", "type": "worker", "worker": "w1", "types": []string{"echo"}, "concurrency": 1}))
	prototest.WantError(t, c.Request(map[string]any{"id": "7", "type": "worker", "worker": "w1", "types": []string{"echo"}}), "bad_request")
	prototest.WantOK(t, c.Request(map[string]any{"id": "8", "type": "job.heartbeat", "jobs": map[string]int{}}))

	id := n.create(t, jobs.Spec{Type: "echo", Payload: json.RawMessage(`{"a":1}`), Timeout: time.Minute})
	f := nextOf(c, "job")
	if f.Str("job") != id || f.Str("job_type") != "echo" || f["attempt"] != 1.0 || f.Str("channel") != "job."+id {
		t.Fatalf("job frame %v, want job %s type echo attempt 1 channel job.%s", f, id, id)
	}
	if p, _ := json.Marshal(f["payload"]); string(p) != `{"a":1}` {
		t.Fatalf("payload %s", p)
	}
	for _, k := range []string{"deadline", "lease_until"} {
		if _, err := time.Parse(time.RFC3339Nano, f.Str(k)); err != nil {
			t.Fatalf("%s: %v in %v", k, err, f)
		}
	}
	prototest.WantError(t, c.Request(map[string]any{"id": "9", "type": "job.progress", "job": id}), "bad_request")
	prototest.WantOK(t, c.Request(map[string]any{"id": "10", "type": "job.progress", "job": id, "attempt": 1, "data": "half"}))
	prototest.WantError(t, c.Request(map[string]any{"id": "11", "type": "job.progress", "job": id, "attempt": 2, "data": "x"}), "fenced")
	prototest.WantOK(t, c.Request(map[string]any{"id": "12", "type": "job.heartbeat", "jobs": map[string]int{id: 1}}))
	prototest.WantOK(t, c.Request(map[string]any{"id": "13", "type": "job.done", "job": id, "attempt": 1, "result": map[string]int{"a": 1}}))
	if j := n.await(t, id); j.State != jobs.Succeeded || string(j.Result) != `{"a":1}` || j.Worker != "w1" {
		t.Fatalf("job %+v, want succeeded with {\"a\":1} by w1", j)
	}
	// Recorded once: a repeat is refused.
	prototest.WantError(t, c.Request(map[string]any{"id": "14", "type": "job.done", "job": id, "attempt": 1, "result": 2}), "fenced")
	prototest.WantError(t, c.Request(map[string]any{"id": "15", "type": "job.done", "job": "nosuchjob", "attempt": 1}), "fenced")
	// A heartbeat of an attempt that ended is answered; one of an attempt
	// that never was this worker's is fenced.
	prototest.WantOK(t, c.Request(map[string]any{"id": "16", "type": "job.heartbeat", "jobs": map[string]int{id: 7}}))
	if f := nextOf(c, "job.fenced"); f.Str("job") != id || f["attempt"] != 7.0 {
		t.Fatalf("fenced frame %v", f)
	}
	prototest.WantOK(t, c.Request(map[string]any{"id": "17", "type": "drain"}))
	n.create(t, jobs.Spec{Type: "echo"})
	prototest.WantOK(t, c.Request(map[string]any{"id": "18", "type": "job.heartbeat", "jobs": map[string]int{}}))
	select {
	case f := <-c.Frames:
		if f.Str("type") == "job" {
			t.Fatalf("a draining worker was assigned %v", f)
		}
	default:
	}
}

// Cancel and fence frames are pushed; release hands the job back without
// counting the attempt.
func TestWorkerCancelAndRelease(t *testing.T) {
	n := newJobNode(t, true, jobs.Config{CancelGrace: 300 * time.Millisecond})
	c := n.dial(t)
	prototest.WantOK(t, c.Request(map[string]any{"id": "1", "type": "worker", "worker": "w1", "types": []string{"t"}, "concurrency": 2}))
	a := n.create(t, jobs.Spec{Type: "t"})
	b := n.create(t, jobs.Spec{Type: "t", MaxAttempts: 1})
	got := map[string]bool{}
	for range 2 {
		got[nextOf(c, "job").Str("job")] = true
	}
	if !got[a] || !got[b] {
		t.Fatalf("assigned %v, want %s and %s", got, a, b)
	}
	if _, err := n.svc.Cancel(context.Background(), a, jobs.ReasonAPI); err != nil {
		t.Fatal(err)
	}
	if f := nextOf(c, "job.cancel"); f.Str("job") != a || f["attempt"] != 1.0 || f.Str("reason") != "api" {
		t.Fatalf("cancel frame %v", f)
	}
	// The handler ignores it: after CancelGrace the attempt is fenced.
	if f := nextOf(c, "job.fenced"); f.Str("job") != a {
		t.Fatalf("fenced frame %v", f)
	}
	if j := n.await(t, a); j.State != jobs.Canceled {
		t.Fatalf("state %s, want canceled", j.State)
	}
	prototest.WantError(t, c.Request(map[string]any{"id": "2", "type": "job.done", "job": a, "attempt": 1, "canceled": true}), "fenced")

	prototest.WantOK(t, c.Request(map[string]any{"id": "3", "type": "drain"}))
	prototest.WantOK(t, c.Request(map[string]any{"id": "4", "type": "job.release", "job": b, "attempt": 1}))
	j, err := n.svc.Get(context.Background(), b)
	if err != nil || j.State != jobs.Queued {
		t.Fatalf("released job: %+v %v, want queued", j, err)
	}
	// Another worker takes it: max_attempts 1 still allows it, the
	// release did not count.
	c2 := n.dial(t)
	prototest.WantOK(t, c2.Request(map[string]any{"id": "1", "type": "worker", "worker": "w2", "types": []string{"t"}}))
	f := nextOf(c2, "job")
	if f.Str("job") != b {
		t.Fatalf("w2 got %v, want %s", f, b)
	}
	prototest.WantOK(t, c2.Request(map[string]any{"id": "2", "type": "job.done", "job": b, "attempt": f["attempt"], "result": "ok"}))
	if j := n.await(t, b); j.State != jobs.Succeeded {
		t.Fatalf("state %s, want succeeded", j.State)
	}
}

// A worker connection that is reset has departed: its attempt is retried
// at once (not at lease expiry) on another worker.
func TestWorkerResetRetriesAtOnce(t *testing.T) {
	n := newJobNode(t, true, jobs.Config{HeartbeatInterval: 2 * time.Second})
	c := n.dial(t)
	prototest.WantOK(t, c.Request(map[string]any{"id": "1", "type": "worker", "worker": "w1", "types": []string{"t"}}))
	id := n.create(t, jobs.Spec{Type: "t"})
	nextOf(c, "job")
	c2 := n.dial(t)
	prototest.WantOK(t, c2.Request(map[string]any{"id": "1", "type": "worker", "worker": "w2", "types": []string{"t"}}))
	t0 := time.Now()
	conn.CloseConn(c.nc, conn.CloseReset)
	f := nextOf(c2, "job")
	if f.Str("job") != id || f["attempt"] != 2.0 {
		t.Fatalf("w2 got %v, want attempt 2 of %s", f, id)
	}
	// The lease is 3 heartbeat intervals (6s): well before it.
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("reassigned %v after the reset, want at once", d)
	}
}

// A subscriber of an on_disconnect=cancel job's channel follows it: when
// its connection is reset and no follower comes back within FollowGrace,
// the job is cancelled.
func TestFollowerResetCancels(t *testing.T) {
	n := newJobNode(t, true, jobs.Config{FollowGrace: 100 * time.Millisecond})
	id := n.create(t, jobs.Spec{Type: "t", OnDisconnect: jobs.Cancel})
	detached := n.create(t, jobs.Spec{Type: "t", OnDisconnect: jobs.Detach})
	c := n.dial(t)
	prototest.WantOK(t, c.Request(map[string]any{"id": "1", "type": "subscribe", "channel": "job." + id, "after": "0"}))
	prototest.WantOK(t, c.Request(map[string]any{"id": "2", "type": "subscribe", "channel": "job." + detached, "after": "0"}))
	if m := nextOf(c, "message"); m.Str("channel") != "job."+id && m.Str("channel") != "job."+detached {
		t.Fatalf("message %v", m)
	}
	conn.CloseConn(c.nc, conn.CloseReset)
	if j := n.await(t, id); j.State != jobs.Canceled || j.CancelReason != jobs.ReasonClientGone {
		t.Fatalf("job %s %q, want canceled client-gone", j.State, j.CancelReason)
	}
	if j, _ := n.svc.Get(context.Background(), detached); j.State != jobs.Queued {
		t.Fatalf("detached job %s, want still queued", j.State)
	}
}

// An unsubscribe is not a departure: the job goes on.
func TestFollowerUnsubscribeKeepsJob(t *testing.T) {
	n := newJobNode(t, true, jobs.Config{FollowGrace: 50 * time.Millisecond})
	id := n.create(t, jobs.Spec{Type: "t", OnDisconnect: jobs.Cancel})
	c := n.dial(t)
	prototest.WantOK(t, c.Request(map[string]any{"id": "1", "type": "subscribe", "channel": "job." + id, "after": "0"}))
	prototest.WantOK(t, c.Request(map[string]any{"id": "2", "type": "unsubscribe", "channel": "job." + id}))
	c.Send(map[string]any{"type": "bye"})
	c.WaitClosed()
	// Past the grace, several times over: still queued.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if j, _ := n.svc.Get(context.Background(), id); j.State != jobs.Queued {
			t.Fatalf("state %s, want queued", j.State)
		}
		time.Sleep(10 * time.Millisecond) // observing that nothing happens for a while
	}
}
