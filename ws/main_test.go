package ws_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
	"github.com/tether-run/tether/protocol"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real node: the Pebble engine in a temp dir, a Registry, an
// Engine, and the Handler at /v1/ws on an http.Server on 127.0.0.1:0
// (conn.Listen, as the server package wires it).
type env struct {
	st   *pebblestore.Store
	reg  *conn.Registry
	h    *ws.Handler
	url  string
	ends chan ended
}

type ended struct {
	info   conn.Info
	reason conn.Reason
	at     time.Time
}

func newEnv(t *testing.T, pcfg protocol.Config) *env {
	t.Helper()
	return newEnvKA(t, pcfg, conn.KeepAlive{})
}

func newEnvKA(t *testing.T, pcfg protocol.Config, ka conn.KeepAlive) *env {
	t.Helper()
	return newEnvIn(t, pcfg, ka, "")
}

// newEnvIn is newEnvKA listening on netnstest.ServerIP in namespace ns,
// or on 127.0.0.1 when ns is empty.
func newEnvIn(t *testing.T, pcfg protocol.Config, ka conn.KeepAlive, ns string) *env {
	t.Helper()
	return newEnvRC(t, pcfg, ka, ns, conn.RegistryConfig{})
}

// newEnvRC is newEnvIn with the Registry's hooks; a nil OnDisconnect
// means the env's, which feeds e.ends.
func newEnvRC(t *testing.T, pcfg protocol.Config, ka conn.KeepAlive, ns string, rc conn.RegistryConfig) *env {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, ends: make(chan ended, 100)}
	if rc.OnDisconnect == nil {
		rc.OnDisconnect = func(i conn.Info, r conn.Reason) { e.ends <- ended{i, r, time.Now()} }
	}
	e.reg, err = conn.NewRegistry(rc)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.Store, pcfg.Registry = st, e.reg
	eng, err := protocol.NewEngine(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if e.h, err = ws.New(ws.Config{Engine: eng}); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if ns == "" {
		ln, err = conn.Listen(context.Background(), "127.0.0.1:0", ka)
	} else {
		err = netnstest.In(ns, func() (err error) {
			ln, err = conn.Listen(context.Background(), netnstest.ServerIP+":0", ka)
			return err
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", e.h)
	srv := &http.Server{Handler: mux, ConnContext: conn.ConnContext, ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	e.url = "ws://" + ln.Addr().String() + "/v1/ws"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := e.h.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		<-served
		st.Close()
	})
	return e
}

func (e *env) wantEnd(t *testing.T, want conn.Reason) ended {
	t.Helper()
	select {
	case x := <-e.ends:
		if x.reason != want {
			t.Fatalf("end reason = %q, want %q", x.reason, want)
		}
		return x
	case <-time.After(15 * time.Second):
		t.Fatalf("no connection end within 15s, want %q", want)
		return ended{}
	}
}

type frame map[string]any

func (f frame) str(k string) string { s, _ := f[k].(string); return s }

// client is a real WebSocket peer (coder/websocket's client). A goroutine
// reads its frames into frames, answering pings when pong is set.
type client struct {
	t       testing.TB
	c       *websocket.Conn
	nc      *net.TCPConn // the raw connection, to reset it
	frames  chan frame
	done    chan struct{}
	readErr error // set before done is closed
	pong    bool
	held    []frame // frames request read past while looking for its answer
}

func connect(t testing.TB, url string, pong bool) *client {
	t.Helper()
	return connectDial(t, url, pong, (&net.Dialer{}).DialContext)
}

// connectDial is connect with the client's dialer.
func connectDial(t testing.TB, url string, pong bool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *client {
	t.Helper()
	cl := &client{t: t, frames: make(chan frame, 100000), done: make(chan struct{}), pong: pong}
	var once sync.Once
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			once.Do(func() { cl.nc = c.(*net.TCPConn) })
		}
		return c, err
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(16 << 20)
	cl.c = c
	t.Cleanup(func() { c.CloseNow() })
	go func() {
		defer close(cl.done)
		defer close(cl.frames)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				cl.readErr = err
				return
			}
			rx := time.Now()
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				cl.readErr = err
				return
			}
			if cl.pong && f.str("type") == "ping" {
				cl.send(map[string]any{"type": "pong", "id": f["id"]})
				continue
			}
			f["_rx"] = rx
			cl.frames <- f
		}
	}()
	return cl
}

func (cl *client) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	cl.c.Write(context.Background(), websocket.MessageText, b) // errors show on the read side
}

func (cl *client) next() frame {
	cl.t.Helper()
	if len(cl.held) > 0 {
		f := cl.held[0]
		cl.held = cl.held[1:]
		return f
	}
	for {
		select {
		case f, ok := <-cl.frames:
			if !ok {
				cl.t.Fatalf("connection ended (%v) while waiting for a frame", cl.readErr)
			}
			if f.str("type") == "ping" {
				continue
			}
			return f
		case <-time.After(10 * time.Second):
			cl.t.Fatal("no frame within 10s")
		}
	}
}

func (cl *client) waitClosed() error {
	cl.t.Helper()
	select {
	case <-cl.done:
		return cl.readErr
	case <-time.After(15 * time.Second):
		cl.t.Fatal("connection not closed within 15s")
		return nil
	}
}

// request sends v and returns its answer. Replies and messages travel in
// separate lanes, so a message may overtake a reply: what comes first is
// kept for later next calls.
func (cl *client) request(v map[string]any) frame {
	cl.t.Helper()
	cl.send(v)
	var other []frame
	for {
		f := cl.next()
		if f.str("id") == v["id"] && isAnswer(f) {
			cl.held = append(other, cl.held...)
			return f
		}
		if isAnswer(f) {
			cl.t.Fatalf("answer %v does not carry id %v", f, v["id"])
		}
		other = append(other, f)
	}
}

// isAnswer reports whether f answers a request (as opposed to a message,
// gap or shutdown frame that may overtake it).
func isAnswer(f frame) bool {
	switch f.str("type") {
	case "reply", "error", "pong":
		return true
	}
	return false
}

func wantOK(t testing.TB, f frame) {
	t.Helper()
	if f.str("type") != "reply" || f["ok"] != true {
		t.Fatalf("got %v, want an ok reply", f)
	}
}

func wantError(t testing.TB, f frame, code string) {
	t.Helper()
	if f.str("type") != "error" || f.str("code") != code {
		t.Fatalf("got %v, want error %s", f, code)
	}
}
