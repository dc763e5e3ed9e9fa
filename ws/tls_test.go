package ws_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/prototest"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/ws"
)

// TestTLSFramesInOneRecord: frames that come in one TLS record are all
// served: once the first is read, the rest sit decrypted in the TLS
// layer, which the socket's readiness does not show (the connection's
// Buffered must).
func TestTLSFramesInOneRecord(t *testing.T) {
	node := prototest.NewNode(t, prototest.NodeConfig{Protocol: session.Config{}})
	h, err := ws.New(ws.Config{}, node.Core)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := conn.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", h)
	srv := &http.Server{Handler: mux, ConnContext: conn.ConnContext, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{prototest.SelfSigned(t)}, NextProtos: []string{"http/1.1"}}}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		node.Registry.Shutdown(ctx, 0)
		if err := h.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		<-served
	})

	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	for round := range 3 {
		// Three requests in one write: one TLS record.
		var b []byte
		ids := []string{"a", "b", "c"}
		for _, id := range ids {
			b = append(b, clientFrame(0x81, `{"id":"`+id+`","type":"ping"}`)...)
		}
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			wantPong(t, nc, br, id)
		}
		t.Logf("round %d: three frames of one TLS record answered", round)
	}
}
