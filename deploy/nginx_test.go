package deploy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/netnstest"
)

// streamModule is where Debian's libnginx-mod-stream puts the stream
// module.
const streamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// nginxMain is the test's own top-level nginx.conf: runtime files in the
// test's directory, and the committed files included where an operator
// includes them (tether.conf in http {}, tether-stream.conf at the top).
const nginxMain = `daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
%[2]s
events { worker_connections 1024; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include %[1]s/tether.conf;
}
include %[1]s/tether-stream.conf;
`

// startNginx runs nginx with deploy/nginx in front of tp, on free ports of
// 127.0.0.1, TLS with a test certificate, and stops it when the test ends.
func startNginx(t *testing.T, tp *tetherProc) *front {
	return startNginxIn(t, tp, "", "127.0.0.1")
}

// startNginxIn is startNginx in network namespace ns ("": this one),
// listening on ip.
func startNginxIn(t *testing.T, tp *tetherProc, ns, ip string) *front {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx is not installed (Debian: apt-get install nginx libnginx-mod-stream; scripts/test.sh installs them as root)")
	}
	if _, err := os.Stat(streamModule); err != nil {
		t.Skipf("nginx's stream module is not installed at %s (Debian: apt-get install libnginx-mod-stream)", streamModule)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key, pool := testCert(t, dir)
	httpPort, httpsPort, tcpPort := freePort(t), freePort(t), freePort(t)
	render(t, "nginx/tether.conf", dir, "tether.conf",
		sub{"server 127.0.0.1:8080;", "server " + tp.addr + ";", 1},
		sub{"listen 80 ", fmt.Sprintf("listen %s:%d ", ip, httpPort), 1},
		sub{"listen 443 ", fmt.Sprintf("listen %s:%d ", ip, httpsPort), 1},
		sub{"/etc/ssl/tether/fullchain.pem", cert, 1},
		sub{"/etc/ssl/tether/privkey.pem", key, 1})
	render(t, "nginx/tether-stream.conf", dir, "tether-stream.conf",
		sub{"server 127.0.0.1:7070;", "server " + tp.tcpAddr + ";", 1},
		sub{"listen 7443 ", fmt.Sprintf("listen %s:%d ", ip, tcpPort), 1},
		sub{"/etc/ssl/tether/fullchain.pem", cert, 1},
		sub{"/etc/ssl/tether/privkey.pem", key, 1})
	top := "load_module " + streamModule + ";"
	if os.Geteuid() == 0 {
		// The workers would run as nobody, who cannot enter the test's
		// temp dir.
		top += "\nuser root root;"
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxMain, dir, top), 0o644); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	logs := func() string { b, _ := os.ReadFile(errLog); return string(b) }
	if out, err := inNS(ns, "nginx", "-t", "-p", dir, "-c", conf, "-e", errLog).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := inNS(ns, "nginx", "-p", dir, "-c", conf, "-e", errLog)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(generous):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() || os.Getenv("DEPLOY_TEST_LOGS") != "" {
			t.Logf("nginx error.log:\n%s", logs())
		}
	})
	for _, p := range []int{httpPort, httpsPort, tcpPort} {
		waitListening(t, ns, fmt.Sprintf("%s:%d", ip, p), exited, logs)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: siteName, NextProtos: []string{"http/1.1"}}
	return &front{name: "nginx", ip: ip, port: httpsPort, tls: tlsConf, tether: tp, tcpPort: tcpPort, clientIP: clientAddr}
}

// TestNginx runs long-poll, SSE, WebSocket and the TCP transport through
// nginx configured with deploy/nginx, and shows what nginx changes about
// the departures tether sees.
func TestNginx(t *testing.T) {
	t.Parallel()
	tp := startTether(t, proxiedFlags...)
	f := startNginx(t, tp)
	testThroughProxy(t, f, seen{
		// nginx takes any end of the client's input for a departure and
		// closes its upstream connection (ngx_http_upstream_check_broken_connection):
		// the half-closed client gets no answer.
		halfCloseAnswered: false,
		halfCloseReason:   "closed",
		// nginx closes its upstream connection when the client resets:
		// tether sees nginx's close, not the client's RST.
		pollCloseReason: "closed",
		pollResetReason: "closed",
		wsResetReason:   "closed",
		remoteHost:      clientIP, // --trusted-proxies and X-Forwarded-For
	})
	t.Run("TCP", func(t *testing.T) { testTCPThroughStream(t, f) })
	t.Run("SSEOverHTTP2", func(t *testing.T) { testSSEOverHTTP2(t, f) })
}

// testTCPThroughStream runs the framed protocol over TLS through nginx's
// stream module to tether's --tcp-addr: subscribe, publish, receive.
func testTCPThroughStream(t *testing.T, f *front) {
	nc, err := f.dial(context.Background(), "tcp", fmt.Sprintf("%s:%d", f.ip, f.tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(nc, f.tls)
	defer c.Close()
	c.SetDeadline(time.Now().Add(generous))
	fmt.Fprint(c, `{"id":"1","type":"subscribe","channel":"tcp","after":"0"}`+"\n")
	fmt.Fprint(c, `{"id":"2","type":"publish","channel":"tcp","data":{"over":"tcp"}}`+"\n")
	sc := bufio.NewScanner(c)
	var replied, received bool
	for (!replied || !received) && sc.Scan() {
		var fr struct {
			Type, ID, Channel string
			OK                bool
			Data              json.RawMessage
		}
		if err := json.Unmarshal(sc.Bytes(), &fr); err != nil {
			t.Fatalf("TCP through nginx: line %s: %v", sc.Bytes(), err)
		}
		switch {
		case fr.Type == "reply" && fr.ID == "2":
			replied = fr.OK
		case fr.Type == "message" && fr.Channel == "tcp":
			received = string(fr.Data) == `{"over":"tcp"}`
		}
	}
	if !replied || !received {
		t.Fatalf("TCP through nginx: replied %v, received %v, scan error %v", replied, received, sc.Err())
	}
	var remote string
	for _, cn := range f.tether.connections(t) {
		if cn.Transport == "tcp" {
			remote = cn.Remote
		}
	}
	if !strings.HasPrefix(remote, "127.0.0.1:") {
		t.Fatalf("tether records the TCP client as %q, want nginx's address 127.0.0.1 (no PROXY protocol)", remote)
	}

	// A reset reaches tether as nginx's close, as over HTTP.
	ends := func() float64 {
		return f.tether.metric(t, "tether_connection_ends_total", "transport=tcp", "reason=closed")
	}
	before := ends()
	tc := nc.(*net.TCPConn)
	tc.SetLinger(0)
	tc.Close()
	waitFor(t, "tether to record the reset TCP client's end as closed", func() bool {
		return ends() == before+1
	}, func() string { return f.tether.series(t, "tether_connection_ends_total") })
}

// TestNginxSilentClient pulls the cable of clients behind nginx while a
// long-poll waits and a WebSocket is open (testSilent).
func TestNginxSilentClient(t *testing.T) {
	t.Parallel()
	pair := netnstest.Setup(t)
	tp := startTetherIn(t, pair.Server, proxiedFlags...)
	f := startNginxIn(t, tp, pair.Server, netnstest.ServerIP)
	f.clientNS, f.clientIP = pair.Client, nil
	testSilent(t, f, pair)
}

// testSSEOverHTTP2: browsers speak HTTP/2 to nginx (listen ... http2),
// which speaks HTTP/1.1 to tether. An SSE stream's events arrive, and a
// client that cancels the stream (RST_STREAM, the connection stays open)
// is seen by tether as gone.
func testSSEOverHTTP2(t *testing.T, f *front) {
	tlsConf := f.tls.Clone()
	tlsConf.NextProtos = []string{"h2"}
	c := &http.Client{Transport: &http.Transport{DialContext: f.dial, TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url("/v1/channels/h2/events"), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("SSE over HTTP/2 through nginx: %s %s", resp.Proto, resp.Status)
	}
	waitWaiting(t, f, "events", 1)
	publish(t, f, "h2", `"over h2"`)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != `data: "over h2"` {
	}
	if sc.Err() != nil {
		t.Fatalf("SSE over HTTP/2 through nginx: %v", sc.Err())
	}
	ends := func() float64 {
		return f.tether.metric(t, "tether_http_request_ends_total", "route=events", "reason=closed")
	}
	before := ends()
	cancel() // RST_STREAM
	waitFor(t, "tether to record the cancelled HTTP/2 stream's end as closed", func() bool {
		return ends() == before+1
	}, func() string { return f.tether.series(t, "tether_http_request_ends_total") })
}
