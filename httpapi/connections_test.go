package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
)

// tcpPeer is a minimal transport over a real loopback connection: Close
// closes the socket with conn.CloseConn and ends the connection.
type tcpPeer struct {
	c net.Conn

	mu sync.Mutex
	h  *registry.Handle // guarded by mu
}

func (p *tcpPeer) Close(mode conn.CloseMode, reason conn.Reason) error {
	err := conn.CloseConn(p.c, mode)
	p.mu.Lock()
	h := p.h
	p.mu.Unlock()
	h.End(reason, 0)
	return err
}

func (p *tcpPeer) NotifyShutdown(time.Duration) {}

// connFixture is a Registry with real loopback connections in it, and the
// admin API on a real loopback HTTP server.
type connFixture struct {
	reg     *registry.Registry
	api     string
	mu      sync.Mutex
	reasons map[string]conn.Reason // guarded by mu
}

func newConnFixture(t *testing.T) *connFixture {
	t.Helper()
	f := &connFixture{reasons: map[string]conn.Reason{}}
	reg, err := registry.New(registry.Config{OnDisconnect: func(i registry.Info, r conn.Reason) {
		f.mu.Lock()
		f.reasons[i.ID] = r
		f.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.reg = reg
	srv := httptest.NewServer(ConnectionsHandler(reg))
	t.Cleanup(srv.Close)
	f.api = srv.URL
	return f
}

// connect opens a loopback TCP connection, admits its server end, and
// returns the handle and the client end.
func (f *connFixture) connect(t *testing.T, tr registry.Transport) (*registry.Handle, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	p := &tcpPeer{c: server}
	h, err := f.reg.Open(context.Background(), registry.OpenInfo{Transport: tr, Remote: server.RemoteAddr().String(), Conn: server}, p)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.h = h
	p.mu.Unlock()
	return h, client.(*net.TCPConn)
}

func (f *connFixture) reason(id string) conn.Reason {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reasons[id]
}

// call sends a request and decodes the JSON answer into v.
func call(t *testing.T, method, url string, wantStatus int, v any) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, url, res.StatusCode, wantStatus, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, url, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s %s: %v in %s", method, url, err, body)
	}
}

type listAnswer struct {
	Connections []registry.Info `json:"connections"`
}

type errAnswer struct {
	Error struct{ Code, Message string } `json:"error"`
}

func TestConnectionsList(t *testing.T) {
	f := newConnFixture(t)
	var empty map[string]json.RawMessage
	call(t, "GET", f.api+"/v1/connections", 200, &empty)
	if got := string(empty["connections"]); got != "[]" {
		t.Fatalf("empty list = %s, want []", got)
	}

	a, _ := f.connect(t, registry.TransportTCP)
	b, _ := f.connect(t, registry.TransportWebSocket)
	b.SetChannels([]string{"news"})
	b.Count(5, 700)

	var got listAnswer
	call(t, "GET", f.api+"/v1/connections", 200, &got)
	if len(got.Connections) != 2 {
		t.Fatalf("listed %d connections, want 2: %+v", len(got.Connections), got)
	}
	ga, gb := got.Connections[0], got.Connections[1]
	if ga.ID != a.ID() || ga.Transport != registry.TransportTCP || ga.State != registry.StateOpen || ga.Remote == "" {
		t.Errorf("first = %+v, want a, tcp, open, with its remote address", ga)
	}
	if gb.ID != b.ID() || gb.Transport != registry.TransportWebSocket || !slices.Equal(gb.Channels, []string{"news"}) ||
		gb.BytesIn != 5 || gb.BytesOut != 700 || gb.Age <= 0 || gb.LastActivity.IsZero() {
		t.Errorf("second = %+v, want b, websocket, [news], 5 in, 700 out, an age and last activity", gb)
	}
}

func TestConnectionsClose(t *testing.T) {
	f := newConnFixture(t)

	t.Run("reset", func(t *testing.T) {
		h, client := f.connect(t, registry.TransportTCP)
		var ans map[string]string
		call(t, "POST", f.api+"/v1/connections/"+h.ID()+"/close?mode=reset", 200, &ans)
		if ans["id"] != h.ID() || ans["mode"] != "reset" {
			t.Fatalf("answer %v, want id and mode reset", ans)
		}
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client read = %v, want ECONNRESET", err)
		}
		if r := f.reason(h.ID()); r != conn.ReasonKicked {
			t.Fatalf("end reason %q, want kicked", r)
		}
	})

	t.Run("close by default", func(t *testing.T) {
		h, client := f.connect(t, registry.TransportTCP)
		// The graceful close drains until our FIN: answer the server's
		// FIN with ours, as a well-behaved client does.
		eof := make(chan error, 1)
		go func() {
			_, err := client.Read(make([]byte, 1))
			client.Close()
			eof <- err
		}()
		var ans map[string]string
		call(t, "POST", f.api+"/v1/connections/"+h.ID()+"/close", 200, &ans)
		if ans["mode"] != "close" {
			t.Fatalf("answer %v, want mode close", ans)
		}
		if err := <-eof; err != io.EOF {
			t.Fatalf("client read = %v, want EOF", err)
		}
	})

	t.Run("discard", func(t *testing.T) {
		h, client := f.connect(t, registry.TransportTCP)
		var ans map[string]string
		call(t, "POST", f.api+"/v1/connections/"+h.ID()+"/close?mode=discard", 200, &ans)
		client.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := client.Read(make([]byte, 1))
		switch ans["mode"] {
		case "discard": // CAP_NET_ADMIN: the client hears nothing
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("client read after discard = %v, want a timeout", err)
			}
		case "reset": // no CAP_NET_ADMIN: reset instead, and said so
			if ans["requested"] != "discard" || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("fallback answer %v, client read %v; want requested discard, ECONNRESET", ans, err)
			}
		default:
			t.Fatalf("answer %v, want mode discard or reset", ans)
		}
	})

	t.Run("errors", func(t *testing.T) {
		h, _ := f.connect(t, registry.TransportTCP)
		var e errAnswer
		call(t, "POST", f.api+"/v1/connections/nope/close", 404, &e)
		if e.Error.Code != CodeNoConnection {
			t.Fatalf("unknown id: code %q, want %q", e.Error.Code, CodeNoConnection)
		}
		e = errAnswer{}
		call(t, "POST", f.api+"/v1/connections/"+h.ID()+"/close?mode=gently", 400, &e)
		if e.Error.Code != CodeBadMode || !strings.Contains(e.Error.Message, "reset") {
			t.Fatalf("bad mode: %+v, want code %q and the valid modes", e.Error, CodeBadMode)
		}
		if _, ok := f.reg.Get(h.ID()); !ok {
			t.Fatal("a refused close ended the connection")
		}
		e = errAnswer{}
		call(t, "DELETE", f.api+"/v1/connections", 405, &e)
		call(t, "GET", f.api+"/v1/connections/"+h.ID()+"/close", 405, &e)
		call(t, "GET", f.api+"/v1/nothing", 404, &e)
	})

	var left listAnswer
	call(t, "GET", f.api+"/v1/connections", 200, &left)
	if len(left.Connections) != 1 {
		t.Fatalf("%d connections left, want the one of the errors case", len(left.Connections))
	}
}
