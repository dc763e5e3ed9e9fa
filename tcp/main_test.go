package tcp_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/netnstest"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/tcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real node (prototest.Node) with a TCP server on 127.0.0.1:0.
type env struct {
	*prototest.Node
	srv  *tcp.Server
	addr string
}

func newEnv(t *testing.T, pcfg session.Config) *env {
	t.Helper()
	return newEnvWith(t, envOpts{proto: pcfg})
}

func newEnvKA(t *testing.T, pcfg session.Config, ka conn.KeepAlive) *env {
	t.Helper()
	return newEnvWith(t, envOpts{proto: pcfg, ka: ka})
}

type envOpts struct {
	proto     session.Config
	ka        conn.KeepAlive
	retention store.Retention
	events    chan string // "connect <session>" and "disconnect <session>", in hook order
	netns     string      // when set, the server listens on netnstest.ServerIP in this namespace
}

func newEnvWith(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{Node: prototest.NewNode(t, prototest.NodeConfig{Protocol: o.proto, Retention: o.retention, Events: o.events})}
	addr, start := "127.0.0.1:0", func(f func() error) error { return f() }
	if o.netns != "" {
		addr, start = netnstest.ServerIP+":0", func(f func() error) error { return netnstest.In(o.netns, f) }
	}
	var err error
	e.srv, err = tcp.New(tcp.Config{Addr: addr, KeepAlive: o.ka}, e.Core)
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
		// The one shutdown path: the Registry ends the connections, Stop
		// waits for their goroutines.
		e.srv.StopAccepting()
		e.Registry.Shutdown(ctx, 0)
		if err := e.srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e
}

// client is a prototest.Client over a real TCP connection speaking NDJSON.
type client struct {
	*prototest.Client
	nc  *net.TCPConn
	wmu *sync.Mutex // serialises writes, the reader's pongs among them
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
	c := &client{nc: nc, wmu: new(sync.Mutex)}
	br := bufio.NewReaderSize(nc, 1<<20)
	read := func() ([]byte, error) {
		line, err := br.ReadBytes('\n')
		if err != nil {
			nc.Close() // as a real client would, so a graceful close ends at once
		}
		return line, err
	}
	c.Client = prototest.NewClient(t, read, func(b []byte) { c.sendRaw(append(b, '\n')) }, pong)
	return c
}

func (c *client) sendRaw(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.Write(b) // errors show up on the read side
}

var errEOF = errors.New("EOF")
