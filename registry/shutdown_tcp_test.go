//go:build linux

package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
)

// lineServer is the smallest real transport: TCP connections from Listen,
// admitted to a Registry, told about shutdown with a "shutdown <ms>" line,
// closed with CloseConn. Its goroutines (accept loop, one reader per
// connection, closers) belong to wg; stop waits for them.
type lineServer struct {
	reg *Registry
	ln  net.Listener
	wg  sync.WaitGroup
}

type linePeer struct {
	srv *lineServer
	c   net.Conn

	mu     sync.Mutex
	reason conn.Reason // guarded by mu: the first reason Close was given
}

func (p *linePeer) NotifyShutdown(hint time.Duration) {
	p.c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(p.c, "shutdown %d\n", hint.Milliseconds())
}

// Close acts on the socket off the caller's goroutine: a graceful close
// drains for up to a second, and Peer methods must return promptly.
func (p *linePeer) Close(mode conn.CloseMode, reason conn.Reason) error {
	p.mu.Lock()
	if p.reason == "" {
		p.reason = reason
	}
	p.mu.Unlock()
	p.srv.wg.Go(func() { conn.CloseConn(p.c, mode) })
	return nil
}

func startLineServer(t *testing.T, reg *Registry) *lineServer {
	t.Helper()
	ln, err := conn.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{reg: reg, ln: ln}
	s.wg.Go(s.accept)
	t.Cleanup(s.stop)
	return s
}

func (s *lineServer) stop() {
	s.ln.Close()
	s.wg.Wait()
}

func (s *lineServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		p := &linePeer{srv: s, c: c}
		h, err := s.reg.Open(context.Background(), OpenInfo{Transport: TransportTCP, Remote: c.RemoteAddr().String(), Conn: c}, p)
		if err != nil {
			conn.CloseConn(c, conn.CloseReset)
			continue
		}
		s.wg.Go(func() { p.serve(h) })
	}
}

// serve reads until the connection ends, then ends it with the reason
// Close recorded or, failing that, what the read said.
func (p *linePeer) serve(h *Handle) {
	n, err := io.Copy(io.Discard, p.c)
	h.Count(int(n), 0)
	p.mu.Lock()
	reason := p.reason
	p.mu.Unlock()
	if reason == "" {
		reason = conn.ReasonClosed
		if err != nil {
			reason = conn.ReasonReset
		}
	}
	h.End(reason, 0)
	p.c.Close()
}

// TestShutdownTCP shuts down real loopback connections: clients that
// leave when told, and stubborn ones that read the notice and the FIN of
// the graceful close but never close their end, so they are reset.
func TestShutdownTCP(t *testing.T) {
	const n, stubborn = 60, 15
	const spread = 6 * time.Second
	var mu sync.Mutex
	reasons := map[string]int{}
	reg := newTestRegistry(t, Config{OnDisconnect: func(_ Info, r conn.Reason) {
		mu.Lock()
		reasons[string(r)]++
		mu.Unlock()
	}})
	srv := startLineServer(t, reg)

	type outcome struct {
		hint    string
		stubEnd error // how a stubborn client's read ended after the notice
	}
	outcomes := make(chan outcome, n)
	release := make(chan struct{}) // stubborn clients close at the end of the test
	var clients sync.WaitGroup
	defer clients.Wait()
	defer close(release)
	for i := range n {
		c, err := net.Dial("tcp", srv.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients.Go(func() {
			defer c.Close()
			br := bufio.NewReader(c)
			line, err := br.ReadString('\n')
			if err != nil {
				outcomes <- outcome{hint: "error: " + err.Error()}
				return
			}
			if i >= stubborn {
				c.Close() // acknowledge by leaving
				outcomes <- outcome{hint: line}
				return
			}
			_, err = br.ReadByte()
			outcomes <- outcome{hint: line, stubEnd: err}
			<-release
		})
	}
	waitFor(t, 5*time.Second, "every client admitted", func() bool { return len(reg.List()) == n })

	srv.ln.Close() // stop accepting, as a server would
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t0 := time.Now()
	err := reg.Shutdown(ctx, spread)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("Shutdown = %v after %v, want nil", err, took)
	}
	// The stubborn clients hold Shutdown until the reset, when a quarter of
	// the 3s window is left (0.75s), minus half of that.
	if took < 2250*time.Millisecond || took >= 3*time.Second {
		t.Fatalf("Shutdown took %v, want between the reset at 2.625s and the 3s deadline", took)
	}

	var hints []string
	for range n {
		o := wait(t, outcomes, 5*time.Second, "client outcome")
		hints = append(hints, o.hint)
		if o.hint != "" && o.stubEnd != nil && !errors.Is(o.stubEnd, io.EOF) {
			t.Errorf("a stubborn client's read ended with %v, want EOF (the graceful close's FIN)", o.stubEnd)
		}
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("shutdown %d\n", (spread*time.Duration(i)/n).Milliseconds()))
	}
	slices.Sort(hints)
	slices.Sort(want)
	if !slices.Equal(hints, want) {
		t.Fatalf("hints received:\n%q\nwant one each of\n%q", hints, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if reasons[string(conn.ReasonClosed)] != n-stubborn || reasons[string(conn.ReasonShutdown)] != stubborn {
		t.Fatalf("end reasons %v, want %d closed and %d shutdown", reasons, n-stubborn, stubborn)
	}
}

// waitFor polls cond until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// wait receives from ch, failing after d.
func wait[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		var zero T
		return zero
	}
}
