package ws_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
)

// heapInUse is the live heap after the pools were emptied (sync.Pool
// keeps its items for one more GC).
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestBuffersReturnToIdle: a connection that once sent a frame of almost
// 1 MiB keeps no more than its idle buffers (before: ~2.6 MiB each).
func TestBuffersReturnToIdle(t *testing.T) {
	const n = 50
	e, _ := newCountingEnv(t, session.Config{PingInterval: time.Minute, PingTimeout: 2 * time.Minute}) // the test answers no pings
	frame := []byte(`{"type":"ping","id":"p","pad":"` + strings.Repeat("x", session.DefaultMaxFrameSize-100) + `"}`)
	hdr := []byte{0x81, 0x80 | 127}
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(frame)))
	hdr = append(hdr, 0, 0, 0, 0) // a zero mask key leaves the payload as is
	conns := make([]*rawWS, n)
	for i := range conns {
		nc, br := rawDial(t, e.url)
		conns[i] = &rawWS{nc: nc, br: br}
	}
	base := heapInUse()
	for _, c := range conns {
		c.nc.Write(append(hdr, frame...))
		if err := c.waitText(`"type":"pong"`); err != nil {
			t.Fatal(err)
		}
	}
	var per int64
	deadline := time.Now().Add(5 * time.Second)
	for {
		per = (heapInUse() - base) / n
		if per < 64<<10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling a condition against a deadline
	}
	t.Logf("heap kept per connection after a %d-byte frame: %d bytes", len(frame), per)
	if per >= 64<<10 {
		t.Fatalf("each connection keeps %d bytes after a large frame, want under 64 KiB", per)
	}
}

// stackInUse is the memory of goroutine stacks.
func stackInUse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}

type rawWS struct {
	nc interface{ Write([]byte) (int, error) }
	br interface {
		ReadByte() (byte, error)
		Read([]byte) (int, error)
	}
}

// waitText reads server frames until a text frame containing want.
func (c *rawWS) waitText(want string) error {
	for range 100 {
		var h [2]byte
		for i := range h {
			b, err := c.br.ReadByte()
			if err != nil {
				return err
			}
			h[i] = b
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126, 127:
			l := make([]byte, 2)
			if n == 127 {
				l = make([]byte, 8)
			}
			if err := readFull(c.br, l); err != nil {
				return err
			}
			n = 0
			for _, b := range l {
				n = n<<8 | int(b)
			}
		}
		p := make([]byte, n)
		if err := readFull(c.br, p); err != nil {
			return err
		}
		if strings.Contains(string(p), want) {
			return nil
		}
	}
	return fmt.Errorf("no frame with %s", want)
}

func readFull(r interface{ Read([]byte) (int, error) }, p []byte) error {
	for len(p) > 0 {
		n, err := r.Read(p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// idleDial opens a WebSocket by hand and subscribes it to channel, keeping
// on the client side nothing but the socket (no bufio), so that the heap
// figures of TestIdleCost are the server's, plus the client's net.Conn.
func idleDial(t testing.TB, addr, channel string) net.Conn {
	t.Helper()
	nc, br := rawDial(t, addr)
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after the handshake's response", br.Buffered())
	}
	sub := []byte(`{"id":"s","type":"subscribe","channel":"` + channel + `"}`)
	nc.Write(append([]byte{0x81, 0x80 | byte(len(sub)), 0, 0, 0, 0}, sub...))
	// The reply: a small text frame. Read it whole, without a buffer.
	var h [2]byte
	if _, err := io.ReadFull(nc, h[:]); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(nc, reply); err != nil || !strings.Contains(string(reply), `"id":"s"`) {
		t.Fatalf("subscribe answered %q, %v", reply, err)
	}
	return nc
}

// TestIdleCost measures what an idle, subscribed WebSocket connection
// costs in heap, stacks and goroutines (the client's end of each socket, a
// net.Conn of a few hundred bytes, is counted too), and bounds it.
func TestIdleCost(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	const n = 400
	// Ends are not collected: n of them would not fit the env's channel.
	rc := registry.Config{OnDisconnect: func(registry.Info, conn.Reason) {}}
	e := newEnvRC(t, session.Config{PingInterval: time.Minute, PingTimeout: 2 * time.Minute}, conn.KeepAlive{}, "", rc)
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/v1/ws")
	idleDial(t, addr, "idle") // warms up the server's paths, outside the count
	baseHeap, baseStack, baseG := heapInUse(), stackInUse(), runtime.NumGoroutine()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = idleDial(t, addr, "idle")
	}
	g := settle(baseG + 5) // writers that answered the subscribes exit
	heap, stack := heapInUse(), stackInUse()
	perHeap := float64(heap-baseHeap) / n
	perStack := float64(stack-baseStack) / n
	perG := float64(g-baseG) / n
	t.Logf("%d idle subscribed connections: heap %.0f bytes, stacks %.0f bytes and %.2f goroutines per connection", n, perHeap, perStack, perG)
	// Before tether's own WebSocket server side and the core's
	// readiness-driven reader: 27.9 KB of heap (the library's connection
	// kept net/http's 4 KiB reader and writer), 16.4 KB of stacks, 2
	// goroutines. Now about 7.3 KB, 0.2 KB and none.
	if perHeap > 10<<10 {
		t.Errorf("heap per idle connection %.0f bytes, want under 10 KiB", perHeap)
	}
	if perStack > 1<<10 {
		t.Errorf("stacks per idle connection %.0f bytes, want under 1 KiB", perStack)
	}
	if g > baseG+5 {
		t.Errorf("%d idle connections hold %d goroutines, want none each", n, g-baseG)
	}
}
