package tcp_test

import (
	"bufio"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/session"
)

func heapInUse() int64 {
	runtime.GC()
	runtime.GC() // sync.Pool keeps its items for one more GC
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestBuffersReturnToIdle: a connection that once sent a frame of almost
// 1 MiB keeps no more than its idle buffers (before: ~2 MiB each).
func TestBuffersReturnToIdle(t *testing.T) {
	const n = 50
	e := newEnv(t, session.Config{PingInterval: time.Minute, PingTimeout: 2 * time.Minute}) // the test answers no pings
	frame := `{"type":"ping","id":"p","pad":"` + strings.Repeat("x", session.DefaultMaxFrameSize-100) + "\"}\n"
	type cl struct {
		nc net.Conn
		br *bufio.Reader
	}
	conns := make([]cl, n)
	for i := range conns {
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		conns[i] = cl{nc, bufio.NewReader(nc)}
	}
	base := heapInUse()
	for _, c := range conns {
		c.nc.Write([]byte(frame))
		for {
			line, err := c.br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(line, `"type":"pong"`) {
				break
			}
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
