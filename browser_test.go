package tether_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/auth"
)

// What browsers send, as raw requests: one list of allowed origins drives
// CORS on every route and the WebSocket Origin check; a cross-site form
// or text/plain POST never publishes or creates a job; Host is checked.
func TestBrowserRules(t *testing.T) {
	n := startSecure(t, func(c *tether.Config) {
		c.AllowedOrigins = []string{"https://app.example.com"}
	})
	tok := sign(t, nil, "alice", time.Hour, auth.Permissions{Subscribe: []string{">"}, Publish: []string{">"}, Jobs: []string{"*"}})
	do := func(method, path string, hdr map[string]string, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, n.base+path, strings.NewReader(body))
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Preflight from the allowed origin, on a publish and on the jobs API.
	for _, path := range []string{"/v1/channels/a/messages", "/v1/jobs", "/v1/channels/a/events"} {
		resp := do("OPTIONS", path, map[string]string{
			"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization, content-type",
		}, "")
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight %s: %d %v", path, resp.StatusCode, resp.Header)
		}
		if resp := do("OPTIONS", path, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, ""); resp.StatusCode != 403 {
			t.Fatalf("preflight from another origin: %d", resp.StatusCode)
		}
	}
	// A GET from the allowed origin carries the CORS header; from another
	// it does not.
	resp := do("GET", "/v1/channels/a/messages?wait=0&token="+tok, map[string]string{"Origin": "https://app.example.com"}, "")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("allowed GET: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do("GET", "/v1/channels/a/messages?wait=0&token="+tok, map[string]string{"Origin": "https://evil.example"}, ""); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS header for another origin: %v", resp.Header)
	}
	// Cross-site simple requests (no preflight): a form, text/plain, even
	// from the allowed origin and even with ?token=.
	for _, origin := range []string{"https://evil.example", "https://app.example.com"} {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
			for _, path := range []string{"/v1/channels/a/messages?token=" + tok, "/v1/jobs?token=" + tok} {
				resp := do("POST", path, map[string]string{"Origin": origin, "Content-Type": ct, "Sec-Fetch-Site": "cross-site"}, `{"type":"t"}`)
				if resp.StatusCode != 403 {
					t.Fatalf("%s %s from %s: %d", ct, path, origin, resp.StatusCode)
				}
			}
		}
	}
	if p := n.poll("a", "after=0&wait=0&token="+tok); len(p.Messages) != 0 {
		t.Fatalf("a cross-site POST stored %v", p.datas())
	}
	_, _, body, _ := httpDo(t, "GET", n.base+"/v1/jobs", tok, "")
	if strings.Contains(string(body), `"id"`) {
		t.Fatalf("a cross-site POST created a job: %s", body)
	}
	// The same POST as the SDK sends it, from the allowed origin: JSON
	// with Authorization (preflighted by the browser).
	if resp := do("POST", "/v1/channels/a/messages", map[string]string{"Origin": "https://app.example.com", "Content-Type": "application/json", "Authorization": "Bearer " + tok}, `1`); resp.StatusCode != 201 {
		t.Fatalf("allowed publish: %d", resp.StatusCode)
	}
	// Host: the loopback default refuses a rebound name.
	if resp := do("GET", "/v1/channels/a/messages?wait=0&token="+tok, map[string]string{"Host": "attacker.example"}, ""); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("rebound Host: %d", resp.StatusCode)
	}
	// WebSocket: the same list.
	for origin, want := range map[string]bool{"https://app.example.com": true, "https://evil.example": false, "": true} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, "ws://"+n.addr()+"/v1/ws?token="+tok, &websocket.DialOptions{HTTPHeader: h})
		cancel()
		if (err == nil) != want {
			t.Fatalf("websocket from %q: %v (%v)", origin, err, resp)
		}
		if err == nil {
			c.CloseNow()
		} else if resp.StatusCode != 403 {
			t.Fatalf("websocket from %q: status %d", origin, resp.StatusCode)
		}
	}
}

// Presence: who is subscribed, and join and leave events with the end
// reason, for those who may read the channel.
func TestPresence(t *testing.T) {
	n := startSecure(t, nil)
	alice := sign(t, nil, "alice", time.Hour, auth.Permissions{Subscribe: []string{"room.*"}})
	bob := sign(t, nil, "bob", time.Hour, auth.Permissions{Subscribe: []string{"room.1"}})
	eve := sign(t, nil, "eve", time.Hour, auth.Permissions{Subscribe: []string{"other"}})

	a := dialWS(t, n, alice)
	if code := a.request(map[string]any{"type": "subscribe", "id": "1", "channel": "room.1", "presence": true}); code != "" {
		t.Fatal(code)
	}
	b := dialTCP(t, n, bob)
	if code := b.request(map[string]any{"type": "subscribe", "id": "1", "channel": "room.1"}); code != "" {
		t.Fatal(code)
	}
	join := a.next()
	if join["type"] != "presence" || join["event"] != "join" || join["sub"] != "bob" || join["transport"] != "tcp" {
		t.Fatalf("join: %v", join)
	}
	status, _, body, _ := httpDo(t, "GET", n.base+"/v1/channels/room.1/presence", bob, "")
	var p struct {
		Presence []struct{ Sub, Conn, Transport string } `json:"presence"`
	}
	json.Unmarshal(body, &p)
	if status != 200 || len(p.Presence) != 2 || p.Presence[0].Sub != "alice" || p.Presence[1].Sub != "bob" || p.Presence[1].Conn != join["conn"] {
		t.Fatalf("presence: %d %s", status, body)
	}
	if status, code, _, _ := httpDo(t, "GET", n.base+"/v1/channels/room.1/presence", eve, ""); status != 403 || code != "forbidden" {
		t.Fatalf("eve's presence: %d %s", status, code)
	}
	if status, _, _, _ := httpDo(t, "GET", n.base+"/v1/channels/room.1/presence", "", ""); status != 401 {
		t.Fatalf("presence without token: %d", status)
	}
	b.stop()
	leave := a.next()
	if leave["type"] != "presence" || leave["event"] != "leave" || leave["sub"] != "bob" || leave["reason"] != "closed" {
		t.Fatalf("leave: %v", leave)
	}
	_, _, body, _ = httpDo(t, "GET", n.base+"/v1/channels/room.1/presence", alice, "")
	if strings.Contains(string(body), "bob") {
		t.Fatalf("bob still present: %s", body)
	}
}

// TLS on the HTTP and TCP listeners, and a reload of the certificate.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cert, key, "first")
	n := &node{t: t, dir: t.TempDir()}
	srv, err := tether.New(tether.Config{Addr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", DataDir: n.dir,
		TLSCertFile: cert, TLSKeyFile: key, Tokens: auth.Config{Secret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	t.Cleanup(n.stop)
	subject := func(addr string) string {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	for _, addr := range []string{srv.Addr().String(), srv.TCPAddr().String()} {
		if cn := subject(addr); cn != "first" {
			t.Fatalf("%s: certificate %q", addr, cn)
		}
	}
	// HTTPS answers (401 without a token).
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get("https://" + srv.Addr().String() + "/v1/channels/a/messages?wait=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("https: %d", resp.StatusCode)
	}
	writeCert(t, cert, key, "second")
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{srv.Addr().String(), srv.TCPAddr().String()} {
		if cn := subject(addr); cn != "second" {
			t.Fatalf("%s after reload: certificate %q", addr, cn)
		}
	}
}

func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
