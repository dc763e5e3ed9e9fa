package session_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
)

// lineConn is a FramedTransport and BufferedReader over a real TCP
// connection, one JSON frame per line (tcp's LineReader).
type lineConn struct {
	nc net.Conn
	lr *tcp.LineReader
}

func (c *lineConn) ReadFrame(context.Context) ([]byte, error) { return c.lr.ReadFrame() }
func (c *lineConn) Buffered() bool                            { return c.lr.Buffered() }
func (c *lineConn) WriteFrame(_ context.Context, f []byte, _ bool) error {
	if f == nil {
		return nil
	}
	_, err := c.nc.Write(append(f, '\n'))
	return err
}
func (c *lineConn) CloseGracefully(conn.Reason) error { return c.nc.Close() }
func (c *lineConn) Close() error                      { return c.nc.Close() }
func (c *lineConn) NetConn() net.Conn                 { return c.nc }
func (c *lineConn) Reason(err error) conn.Reason      { return session.ReasonOf(err) }
func (c *lineConn) Format() session.Format            { return session.JSON }

// TestStartOnClosedSocket: a connection whose socket is gone before its
// reader could arm ends as a failed read would (closed), and done is
// called once it has wound up.
func TestStartOnClosedSocket(t *testing.T) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ends := make(chan conn.Reason, 1)
	reg, err := registry.New(registry.Config{OnDisconnect: func(_ registry.Info, r conn.Reason) { ends <- r }})
	if err != nil {
		t.Fatal(err)
	}
	core, err := session.New(session.Config{}, st, reg, nil, session.Access{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	p, err := core.Authenticate("")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	calls := 0
	oi := registry.OpenInfo{Transport: registry.TransportTCP, Remote: nc.RemoteAddr().String(), Conn: nc}
	if err := core.Start(context.Background(), &lineConn{nc: nc, lr: tcp.NewLineReader(nc, 1<<20)}, p, oi, nil, func() {
		calls++
		close(done)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("done not called within 10s")
	}
	if r := <-ends; r != conn.ReasonClosed {
		t.Fatalf("end reason %q, want closed", r)
	}
	if calls != 1 {
		t.Fatalf("done called %d times, want 1", calls)
	}
}
