//go:build linux

package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A silent peer (cable pulled: no FIN, no RST) is only noticed by the
// kernel's keepalive and TCP_USER_TIMEOUT. These tests pull the cable for
// real: server and client sit in two network namespaces joined by a veth
// pair (192.0.2.0/24, TEST-NET-1, RFC 5737, used only inside them), and an
// nftables rule in the client's namespace drops everything in and out.
func TestSilentPeer(t *testing.T) {
	requireNetns(t)
	t.Parallel() // ~8 s of kernel timers
	small := KeepAlive{Idle: time.Second, Interval: time.Second, Count: 2, UserTimeout: 3 * time.Second}
	for _, tc := range []struct {
		name  string
		ka    KeepAlive
		h     func(calls chan<- *call) http.Handler
		event time.Duration // the long-poll is answered this long after the cable is pulled; 0 = never
		bound time.Duration
	}{
		// keepalive probes at 1 and 2 s, abort at 3 s (user timeout).
		{"idle/small", small, waitHandler, 0, 8 * time.Second},
		// probe at 3 s, abort at 4 s.
		{"idle/default", KeepAlive{}, waitHandler, 0, 10 * time.Second},
		// first unacked filler <= 0.5 s, retransmitted an RTO later, abort
		// 4 s after that retransmission: ~5 s.
		{"streaming/default", KeepAlive{}, heartbeatHandler, 0, 10 * time.Second},
		// the worst case: answered between the first keepalive probe and
		// the abort, then 3.5 s + RTO + 4 s: ~7.8 s.
		{"answered-while-probing/default", KeepAlive{}, answerThenWaitHandler, 3500 * time.Millisecond, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			took := pullCable(t, tc.ka, tc.h, tc.event)
			if took > tc.bound {
				t.Fatalf("silent peer noticed after %v, want < %v", took, tc.bound)
			}
			t.Logf("silent peer noticed %v after the cable was pulled", took.Round(time.Millisecond))
		})
	}
}

// pullCable runs a long-poll between two namespaces, drops all of the
// client's traffic, and returns how long the server took to report
// ReasonTimeout.
func pullCable(t *testing.T, ka KeepAlive, h func(chan<- *call) http.Handler, event time.Duration) time.Duration {
	srvNS, cliNS := setupNetns(t)
	var ln net.Listener
	err := inNetns(srvNS, func() (err error) {
		ln, err = Listen(context.Background(), "192.0.2.1:0", ka)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan *call, 1)
	ts := serve(t, ln, h(calls), WatchConfig{})
	var c net.Conn
	if err := inNetns(cliNS, func() (err error) { c, err = net.Dial("tcp", ts.addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /poll HTTP/1.1\r\nHost: test\r\n\r\n")
	call := nextCall(t, calls)

	runIn(t, cliNS, dropAll, "nft", "-f", "-")
	pulled := time.Now()
	if event > 0 {
		time.AfterFunc(event, func() { call.release <- "late event" })
	}
	gone := waitGone(t, call, 30*time.Second)
	checkCause(t, call.ctx, ErrTimeout)
	if e := ts.nextEnd(t); e.Reason != ReasonTimeout {
		t.Fatalf("End = %+v, want timeout", e)
	}
	return gone.Sub(pulled)
}

// dropAll makes the client's namespace drop every packet in and out, so
// its kernel sends neither ACK nor RST: a pulled cable.
const dropAll = `table inet tether {
	chain in { type filter hook input priority 0; policy drop; }
	chain out { type filter hook output priority 0; policy drop; }
}
`

// answerThenWaitHandler sends an event when released, then waits for
// more: the server writes once, at a moment of the test's choosing.
func answerThenWaitHandler(calls chan<- *call) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{ctx: r.Context(), w: w, release: make(chan string, 1), goneAt: make(chan time.Time, 1)}
		calls <- c
		for {
			select {
			case ev := <-c.release:
				io.WriteString(w, ev)
				http.NewResponseController(w).Flush()
			case <-r.Context().Done():
				c.goneAt <- time.Now()
				return
			}
		}
	})
}

// heartbeatHandler streams an SSE comment every 500 ms until its context
// ends: the server is sending while the peer goes silent.
func heartbeatHandler(calls chan<- *call) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		SetFiller(w, []byte(":\n"))
		c := &call{ctx: r.Context(), w: w, goneAt: make(chan time.Time, 1)}
		calls <- c
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			io.WriteString(w, ":\n")
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				c.goneAt <- time.Now()
				return
			case <-tick.C:
			}
		}
	})
}

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("silent-peer tests need root (network namespaces, nftables); run as root to include them")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("silent-peer tests need %q (iproute2, nftables): %v", tool, err)
		}
	}
}

var netnsSeq atomic.Int32

// setupNetns creates two namespaces joined by a veth pair and removes them
// when the test ends, whatever happens. Deleting a namespace destroys its
// veth end, and with it the pair.
func setupNetns(t *testing.T) (srv, cli string) {
	n := netnsSeq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid(), n)
	srv, cli = "tether-s-"+id, "tether-c-"+id
	vs, vc := fmt.Sprintf("tvs%x%x", os.Getpid(), n), fmt.Sprintf("tvc%x%x", os.Getpid(), n)
	for _, ns := range []string{srv, cli} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("cannot create network namespaces here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "ip", "link", "add", vs, "netns", srv, "type", "veth", "peer", "name", vc, "netns", cli)
	for _, l := range [][3]string{{srv, vs, "192.0.2.1/24"}, {cli, vc, "192.0.2.2/24"}} {
		run(t, "ip", "-n", l[0], "addr", "add", l[2], "dev", l[1])
		run(t, "ip", "-n", l[0], "link", "set", l[1], "up")
		run(t, "ip", "-n", l[0], "link", "set", "lo", "up")
	}
	return srv, cli
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// runIn runs a command inside namespace ns with stdin.
func runIn(t *testing.T, ns, stdin, name string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", ns, name, strings.Join(args, " "), err, out)
	}
}

// inNetns runs f on an OS thread moved into namespace ns. Sockets keep the
// namespace they were created in, so what f listens on or dials can then
// be used from any goroutine. The thread is never unlocked: it exits with
// the goroutine, so no other goroutine ever runs in the namespace.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(errors.New("setns"), err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
