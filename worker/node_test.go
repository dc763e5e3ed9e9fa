package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/jobs/workerproto"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
	"github.com/tether-run/tether/ws"
)

// node is a real tether node but for the HTTP API: the Pebble engine in a
// temp dir, a jobs.Service, and the framed protocol over WebSocket
// (http.Server on 127.0.0.1:0) and TCP, as package server wires them.
type node struct {
	Jobs    *jobs.Service
	WSURL   string // ws://127.0.0.1:port/v1/ws
	TCPAddr string // tcp://127.0.0.1:port
}

// nodeConfig tunes the Service; zero fields take the test defaults.
type nodeConfig struct {
	Heartbeat   time.Duration // 200ms
	CancelGrace time.Duration // 5s
}

func startNode(t testing.TB, nc nodeConfig) *node {
	t.Helper()
	if nc.Heartbeat == 0 {
		nc.Heartbeat = 200 * time.Millisecond
	}
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := jobs.New(jobs.Config{
		HeartbeatInterval: nc.Heartbeat, CancelGrace: nc.CancelGrace,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
	}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Stop(ctx)
	})
	reg, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := session.New(session.Config{}, st, reg, nil, session.Access{}, workerproto.New(svc))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tcp.New(tcp.Config{Addr: "127.0.0.1:0"}, core)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wh, err := ws.New(ws.Config{}, core)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := conn.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", wh)
	hs := &http.Server{Handler: mux, ConnContext: conn.ConnContext}
	go hs.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts.StopAccepting()
		ln.Close()
		reg.Shutdown(ctx, 0)
		ts.Stop(ctx)
		wh.Stop(ctx)
		hs.Shutdown(ctx)
	})
	return &node{Jobs: svc, WSURL: "ws://" + ln.Addr().String() + "/v1/ws", TCPAddr: "tcp://" + ts.Addr().String()}
}

// create creates a job and returns its id.
func (n *node) create(t testing.TB, spec jobs.Spec) string {
	t.Helper()
	j, _, err := n.Jobs.Create(context.Background(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// await waits up to 20s for the job to be final.
func (n *node) await(t testing.TB, id string) jobs.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := n.Jobs.Await(ctx, id)
	if err != nil {
		t.Fatalf("job %s not final within 20s: %v (state %s)", id, err, j.State)
	}
	return j
}

// waitState polls the job until ok(job) holds, for up to 20s.
func (n *node) waitState(t testing.TB, id string, what string, ok func(jobs.Job) bool) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := n.Jobs.Get(context.Background(), id)
		if err == nil && ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: not %s within 20s (last: %+v, %v)", id, what, j, err)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition against a deadline
	}
}

// transports runs f once per transport.
func transports(t *testing.T, f func(t *testing.T, url func(*node) string)) {
	t.Run("ws", func(t *testing.T) { f(t, func(n *node) string { return n.WSURL }) })
	t.Run("tcp", func(t *testing.T) { f(t, func(n *node) string { return n.TCPAddr }) })
}
