package ws_test

import (
	"context"
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
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real node (prototest.Node) with the Handler at /v1/ws on an
// http.Server on 127.0.0.1:0 (conn.Listen, as the server package wires
// it).
type env struct {
	*prototest.Node
	h   *ws.Handler
	url string
}

func newEnv(t *testing.T, pcfg session.Config) *env {
	t.Helper()
	return newEnvKA(t, pcfg, conn.KeepAlive{})
}

func newEnvKA(t *testing.T, pcfg session.Config, ka conn.KeepAlive) *env {
	t.Helper()
	return newEnvIn(t, pcfg, ka, "")
}

// newEnvIn is newEnvKA listening on netnstest.ServerIP in namespace ns,
// or on 127.0.0.1 when ns is empty.
func newEnvIn(t *testing.T, pcfg session.Config, ka conn.KeepAlive, ns string) *env {
	t.Helper()
	return newEnvRC(t, pcfg, ka, ns, registry.Config{})
}

// newEnvRC is newEnvIn with the Registry's hooks; a nil OnDisconnect
// means the env's, which feeds e.Ends.
func newEnvRC(t *testing.T, pcfg session.Config, ka conn.KeepAlive, ns string, rc registry.Config) *env {
	t.Helper()
	e := &env{Node: prototest.NewNode(t, prototest.NodeConfig{Protocol: pcfg, Hooks: rc})}
	var err error
	if e.h, err = ws.New(ws.Config{}, e.Core); err != nil {
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
		// The one shutdown path: the Registry ends the connections, Stop
		// waits for their goroutines.
		e.Registry.Shutdown(ctx, 0)
		if err := e.h.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		<-served
	})
	return e
}

// client is a prototest.Client over a real WebSocket (coder/websocket's
// client), one frame a text message.
type client struct {
	*prototest.Client
	c  *websocket.Conn
	nc *net.TCPConn // the raw connection, to reset it
}

func connect(t testing.TB, url string, pong bool) *client {
	t.Helper()
	return connectDial(t, url, pong, (&net.Dialer{}).DialContext)
}

// connectDial is connect with the client's dialer.
func connectDial(t testing.TB, url string, pong bool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *client {
	t.Helper()
	cl := &client{}
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
	read := func() ([]byte, error) {
		_, b, err := c.Read(context.Background())
		return b, err
	}
	write := func(b []byte) {
		c.Write(context.Background(), websocket.MessageText, b) // errors show on the read side
	}
	cl.Client = prototest.NewClient(t, read, write, pong)
	return cl
}
