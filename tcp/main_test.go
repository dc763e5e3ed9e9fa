package tcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
	"github.com/tether-run/tether/protocol"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real node: the Pebble engine in a temp dir, a Registry, an
// Engine and a TCP server on 127.0.0.1:0.
type env struct {
	st   *pebblestore.Store
	reg  *conn.Registry
	srv  *tcp.Server
	addr string
	ends chan ended
}

type ended struct {
	info   conn.Info
	reason conn.Reason
	at     time.Time
}

func newEnv(t *testing.T, pcfg protocol.Config) *env {
	t.Helper()
	return newEnvWith(t, envOpts{proto: pcfg})
}

func newEnvKA(t *testing.T, pcfg protocol.Config, ka conn.KeepAlive) *env {
	t.Helper()
	return newEnvWith(t, envOpts{proto: pcfg, ka: ka})
}

type envOpts struct {
	proto     protocol.Config
	ka        conn.KeepAlive
	retention store.Retention
	events    chan string // "connect <session>" and "disconnect <session>", in hook order
	netns     string      // when set, the server listens on netnstest.ServerIP in this namespace
}

func newEnvWith(t testing.TB, o envOpts) *env {
	t.Helper()
	pcfg, ka := o.proto, o.ka
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir(), Retention: o.retention})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, ends: make(chan ended, 100)}
	rc := conn.RegistryConfig{
		OnDisconnect: func(i conn.Info, r conn.Reason) {
			if o.events != nil {
				o.events <- "disconnect " + i.SessionKey
			}
			e.ends <- ended{i, r, time.Now()}
		},
	}
	if o.events != nil {
		rc.OnConnect = func(i conn.Info) { o.events <- "connect " + i.SessionKey }
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
	addr, start := "127.0.0.1:0", func(f func() error) error { return f() }
	if o.netns != "" {
		addr, start = netnstest.ServerIP+":0", func(f func() error) error { return netnstest.In(o.netns, f) }
	}
	e.srv, err = tcp.New(tcp.Config{Engine: eng, Addr: addr, KeepAlive: ka})
	if err != nil {
		t.Fatal(err)
	}
	if err := start(func() error { return e.srv.Start(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	e.addr = e.srv.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		st.Close()
	})
	return e
}

// nextEnd waits for the next connection end.
func (e *env) nextEnd(t *testing.T, within time.Duration) ended {
	t.Helper()
	select {
	case x := <-e.ends:
		return x
	case <-time.After(within):
		t.Fatalf("no connection end within %v", within)
		return ended{}
	}
}

func (e *env) wantEnd(t *testing.T, want conn.Reason) ended {
	t.Helper()
	x := e.nextEnd(t, 15*time.Second)
	if x.reason != want {
		t.Fatalf("end reason = %q, want %q", x.reason, want)
	}
	return x
}

// frame is a decoded server frame.
type frame map[string]any

func (f frame) str(k string) string { s, _ := f[k].(string); return s }

// client is a real TCP peer speaking NDJSON. A goroutine reads its frames
// into frames (closed at EOF or error, the error in readErr), answering
// pings when pong is set.
type client struct {
	t       testing.TB
	nc      *net.TCPConn
	wmu     sync.Mutex
	frames  chan frame
	done    chan struct{}
	readErr error // set before done is closed
	pong    bool
	held    []frame // frames request read past while looking for its answer
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// connect dials and starts reading.
func connect(t testing.TB, addr string, pong bool) *client {
	return newClient(t, dial(t, addr), pong)
}

// newClient starts reading from a connection already dialled.
func newClient(t testing.TB, nc *net.TCPConn, pong bool) *client {
	c := &client{t: t, nc: nc, frames: make(chan frame, 100000), done: make(chan struct{}), pong: pong}
	c.startReading()
	return c
}

func (c *client) startReading() {
	go func() {
		defer close(c.done)
		defer close(c.frames)
		br := bufio.NewReaderSize(c.nc, 1<<20)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				c.readErr = err
				c.nc.Close() // as a real client would, so a graceful close ends at once
				return
			}
			rx := time.Now()
			var f frame
			if err := json.Unmarshal(line, &f); err != nil {
				c.readErr = fmt.Errorf("bad frame %q: %w", line, err)
				return
			}
			if c.pong && f.str("type") == "ping" {
				c.send(map[string]any{"type": "pong", "id": f["id"]})
				continue
			}
			f["_rx"] = rx
			c.frames <- f
		}
	}()
}

func (c *client) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	c.sendRaw(append(b, '\n'))
}

func (c *client) sendRaw(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.Write(b) // errors show up on the read side
}

// next returns the next frame that is not a ping.
func (c *client) next() frame {
	c.t.Helper()
	if len(c.held) > 0 {
		f := c.held[0]
		c.held = c.held[1:]
		return f
	}
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection ended (%v) while waiting for a frame", c.readErr)
			}
			if f.str("type") == "ping" {
				continue
			}
			return f
		case <-time.After(10 * time.Second):
			c.t.Fatal("no frame within 10s")
		}
	}
}

// waitClosed waits for the read side to end and returns its error.
func (c *client) waitClosed() error {
	c.t.Helper()
	select {
	case <-c.done:
		return c.readErr
	case <-time.After(15 * time.Second):
		c.t.Fatal("connection not closed within 15s")
		return nil
	}
}

// request sends v and returns the next non-ping frame, which must answer it.
func (c *client) request(v map[string]any) frame {
	c.t.Helper()
	c.send(v)
	// Replies and messages travel in separate lanes, so a message may
	// overtake a reply: keep what comes first for later next calls.
	var other []frame
	for {
		f := c.next()
		if f.str("id") == v["id"] && isAnswer(f) {
			c.held = append(other, c.held...)
			return f
		}
		if isAnswer(f) {
			c.t.Fatalf("answer %v does not carry id %v", f, v["id"])
		}
		other = append(other, f)
	}
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

var errEOF = errors.New("EOF")

// isAnswer reports whether f answers a request (as opposed to a message,
// gap or shutdown frame that may overtake it).
func isAnswer(f frame) bool {
	switch f.str("type") {
	case "reply", "error", "pong":
		return true
	}
	return false
}
