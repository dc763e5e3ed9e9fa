package tcp_test

import (
	"bufio"
	"fmt"
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
// 1 MiB keeps no more than an idle connection may (before: ~2 MiB each;
// then under 64 KiB, its 64 KiB bufio.Reader not counted).
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
		if per < idleHeapBound || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling a condition against a deadline
	}
	t.Logf("heap kept per connection after a %d-byte frame: %d bytes", len(frame), per)
	if per >= idleHeapBound {
		t.Fatalf("each connection keeps %d bytes after a large frame, want under %d", per, idleHeapBound)
	}
}

// TestIdleConnectionCost: what an idle connection (hello, one
// subscription, answered) keeps in the server: heap and goroutine stacks,
// per connection, measured in-process over many connections (the
// clients' side is a bare net.Conn each, counted in).
func TestIdleConnectionCost(t *testing.T) {
	const n = 500
	e := newEnv(t, idleConfig)
	go func() { // the Node's Ends channel holds 100; the cleanup ends all
		for range n {
			<-e.Ends
		}
	}()
	var before runtime.MemStats
	heapInUse()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() { // one cleanup, not one per connection: it is counted
		for _, nc := range conns {
			nc.Close()
		}
	})
	for i := range n {
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		fmt.Fprintf(nc, `{"type":"hello","session":"m%d"}`+"\n"+`{"type":"subscribe","id":"s","channel":"idle"}`+"\n", i)
		var b [512]byte
		got := 0
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !strings.Contains(string(b[:got]), "\n") {
			k, err := nc.Read(b[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += k
		}
		nc.SetReadDeadline(time.Time{})
	}
	settle(t, goroutines+10)
	var after runtime.MemStats
	heapInUse()
	runtime.ReadMemStats(&after)
	heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	stacks := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("per idle connection: heap %d bytes, goroutine stacks %d bytes, goroutines %.3f", heap, stacks, float64(runtime.NumGoroutine()-goroutines)/n)
	if heap > idleHeapBound {
		t.Fatalf("an idle connection keeps %d bytes of heap, want at most %d", heap, idleHeapBound)
	}
	if stacks > 1<<10 {
		t.Fatalf("an idle connection keeps %d bytes of goroutine stacks, want none", stacks)
	}
}

// idleHeapBound is what an idle connection may keep in the heap, server
// and the test's bare client together.
const idleHeapBound = 8 << 10
