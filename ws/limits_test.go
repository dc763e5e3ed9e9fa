package ws_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/ws"
)

// countConn counts the bytes the server reads from a socket.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countConn) NetConn() net.Conn { return c.Conn }

type countListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: c, n: l.read}, nil
}

// newCountingEnv is newEnv whose sockets count what the server reads.
func newCountingEnv(t testing.TB, pcfg session.Config) (*env, *atomic.Int64) {
	t.Helper()
	e := &env{Node: prototest.NewNode(t, prototest.NodeConfig{Protocol: pcfg})}
	var err error
	if e.h, err = ws.New(ws.Config{}, e.Core); err != nil {
		t.Fatal(err)
	}
	ln, err := conn.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	read := new(atomic.Int64)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", e.h)
	srv := &http.Server{Handler: mux, ConnContext: conn.ConnContext, ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(countListener{ln, read})
	}()
	e.url = ln.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		e.Registry.Shutdown(ctx, 0)
		e.h.Stop(ctx)
		<-served
	})
	return e, read
}

// rawDial opens a WebSocket by hand, so the test can send frames no
// library would.
func rawDial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	io.WriteString(nc, "GET /v1/ws HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	return nc, br
}

// header is a masked client frame header claiming n payload bytes.
func header(opcode byte, fin bool, n uint64) []byte {
	b := []byte{opcode, 0x80 | 127}
	if fin {
		b[0] |= 0x80
	}
	b = binary.BigEndian.AppendUint64(b, n)
	return append(b, 1, 2, 3, 4) // mask key
}

// readClose reads server frames until a close frame, and returns its status.
func readClose(br *bufio.Reader) (int, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return 0, err
		}
		n := int(h[1] & 0x7f)
		if n == 126 {
			var l [2]byte
			io.ReadFull(br, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return 0, err
		}
		if h[0]&0x0f == 8 {
			return int(binary.BigEndian.Uint16(p)), nil
		}
	}
}

// TestHugeHeader: a header claiming 2^40 bytes ends the connection at
// once with close 1009 and a reset, and the server reads none of the
// payload, whether the client then sends nothing, a stream, or a bit
// more than the limit and then nothing.
func TestHugeHeader(t *testing.T) {
	for _, follow := range []string{"nothing", "stream", "limit+2"} {
		t.Run(follow, func(t *testing.T) {
			e, read := newCountingEnv(t, session.Config{})
			nc, br := rawDial(t, e.url)
			before := read.Load()
			start := time.Now()
			nc.Write(header(0x1, true, 1<<40))
			go func() {
				switch follow {
				case "stream":
					chunk := make([]byte, 64<<10)
					for {
						if _, err := nc.Write(chunk); err != nil {
							return
						}
					}
				case "limit+2":
					nc.Write(make([]byte, session.DefaultMaxFrameSize+2))
				}
			}()
			x := e.WantEnd(t, conn.ReasonProtocolError)
			took := x.At.Sub(start)
			code, err := readClose(br)
			got := read.Load() - before
			t.Logf("followed by %s: ended in %v, close %d (%v), server read %d bytes after the handshake", follow, took, code, err, got)
			if took > time.Second {
				t.Errorf("ended after %v, want under 1s", took)
			}
			if code != 1009 {
				t.Errorf("close status %d (%v), want 1009", code, err)
			}
			if got > 14 {
				t.Errorf("server read %d bytes after the handshake, want only the 14-byte header", got)
			}
		})
	}
}

// TestOversizeFragments: the limit holds for a message split into
// continuation frames, each under the limit.
func TestOversizeFragments(t *testing.T) {
	e, _ := newCountingEnv(t, session.Config{MaxFrameSize: 1000})
	nc, br := rawDial(t, e.url)
	nc.Write(append(header(0x1, false, 600), make([]byte, 600)...))
	nc.Write(header(0x0, true, 600))
	e.WantEnd(t, conn.ReasonProtocolError)
	if code, err := readClose(br); code != 1009 {
		t.Fatalf("close status %d (%v), want 1009", code, err)
	}
}

// TestKickMidFrame: an operator's close, in either mode, ends a
// connection whose reader is blocked in the middle of a frame.
func TestKickMidFrame(t *testing.T) {
	for _, mode := range []conn.CloseMode{conn.CloseGraceful, conn.CloseReset} {
		t.Run(string(mode), func(t *testing.T) {
			e, _ := newCountingEnv(t, session.Config{})
			nc, _ := rawDial(t, e.url)
			nc.Write(append(header(0x1, true, 1000), "{\"id\":"...)) // 7 of 1000 bytes, then silence
			var id string
			deadline := time.Now().Add(5 * time.Second)
			for id == "" && time.Now().Before(deadline) {
				if l := e.Registry.List(); len(l) == 1 {
					id = l[0].ID
				}
				runtime.Gosched()
			}
			if id == "" {
				t.Fatal("the connection was not registered")
			}
			start := time.Now()
			if err := e.Registry.Close(id, mode); err != nil {
				t.Fatal(err)
			}
			x := e.WantEnd(t, conn.ReasonKicked)
			took := x.At.Sub(start)
			t.Logf("%s: ended %v after the operator's close", mode, took)
			if took > 1500*time.Millisecond {
				t.Fatalf("ended after %v, want within the 1s close wait", took)
			}
		})
	}
}

// rss is the process's resident set, in bytes.
func rss(t testing.TB) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// TestStalledOversizeMemory: 300 connections that each claim 2^40 bytes,
// send a bit more than the limit and stall leave the server's RSS within
// 10% of what it was before (before the guard they stayed open, each
// holding a 2 MiB buffer: 35 to 854 MB).
func TestStalledOversizeMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("300 connections; RSS means little under the race detector")
	}
	e, _ := newCountingEnv(t, session.Config{})
	nc, _ := rawDial(t, e.url) // warm up the server's paths
	nc.Close()
	e.WantEnd(t, conn.ReasonClosed)
	base := rss(t)
	const n = 300
	var ended atomic.Int64
	done := make(chan struct{})
	go func() {
		for range e.Ends {
			if ended.Add(1) == n {
				close(done)
				return
			}
		}
	}()
	payload := make([]byte, session.DefaultMaxFrameSize+2)
	var wg sync.WaitGroup
	for range n {
		nc, _ := rawDial(t, e.url)
		wg.Go(func() {
			nc.Write(header(0x2, true, 1<<40))
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			nc.Write(payload)
		})
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d of %d connections ended; %d still listed", ended.Load(), n, len(e.Registry.List()))
	}
	wg.Wait()
	after := rss(t)
	t.Logf("RSS: %.1f MB before, %.1f MB after %d stalled oversize connections", float64(base)/1e6, float64(after)/1e6, n)
	if after > base+base/10 {
		t.Fatalf("RSS %d after, %d before: more than 10%% above", after, base)
	}
}

// TestInvalidUTF8: a frame that is not UTF-8 (inside a JSON string, which
// encoding/json would accept) ends the connection with invalid_utf8 and
// close 1007; nothing is stored.
func TestInvalidUTF8(t *testing.T) {
	e := newEnv(t, session.Config{})
	c := connect(t, e.url, true)
	c.c.Write(context.Background(), websocket.MessageText, []byte("{\"id\":\"p\",\"type\":\"publish\",\"channel\":\"a\",\"data\":\"\xff\"}"))
	prototest.WantError(t, c.Next(), "invalid_utf8")
	if err := c.WaitClosed(); websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("close = %v, want status 1007", err)
	}
	e.WantEnd(t, conn.ReasonProtocolError)
	if b, err := e.Store.Bounds(context.Background(), "a"); err != nil || b.Earliest != "" {
		t.Fatalf("channel a: %+v, %v; want nothing stored", b, err)
	}
}
