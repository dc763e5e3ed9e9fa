package tcp_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/tcp"
)

// TestTLSRecordsHeldByTheConn: over TLS, frames the tls.Conn holds
// (decrypted, or read from the socket and not yet decrypted) when the
// socket has nothing more to read are served all the same: a burst of
// many records in one write is answered in full, every time, and the
// connection then holds no goroutine.
func TestTLSRecordsHeldByTheConn(t *testing.T) {
	node := prototest.NewNode(t, prototest.NodeConfig{Protocol: idleConfig})
	srv, err := tcp.New(tcp.Config{}, node.Core)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{prototest.SelfSigned(t)}}))
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.StopAccepting()
		node.Registry.Shutdown(ctx, 0)
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		<-served
	})
	idle := runtime.NumGoroutine() + 1 // conn.Ready's poller
	tc, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	c := &rawConn{nc: tc, br: bufio.NewReader(tc)}
	c.ping(t, "warm")
	for round := range 10 {
		// A burst of frames of ~1 KB in one write, which spans TLS
		// records at any point; then one frame per write, so one TLS
		// record per frame: the server's tls.Conn reads several records
		// from the socket at once and hands them out one at a time, each
		// ending where a frame ends, while the socket has nothing more.
		var b strings.Builder
		for i := range 100 {
			fmt.Fprintf(&b, `{"type":"ping","id":"t%d-%d","pad":"%s"}`+"\n", round, i, strings.Repeat("x", 1000))
		}
		c.write(t, b.String())
		for i := 100; i < 200; i++ {
			c.write(t, fmt.Sprintf(`{"type":"ping","id":"t%d-%d"}`+"\n", round, i))
		}
		for i := range 200 {
			c.want(t, fmt.Sprintf(`"id":"t%d-%d"`, round, i))
		}
		if got := settle(t, idle); got > idle {
			t.Fatalf("round %d: %d goroutines after the burst was served, want the %d of an idle connection", round, got, idle)
		}
	}
}
