package origin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// server runs the Guard around a handler that counts the requests it
// sees, on a real loopback listener.
func server(t *testing.T, cfg Config) (base string, reached *atomic.Int64) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reached = new(atomic.Int64)
	srv := httptest.NewServer(g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusOK)
	})))
	t.Cleanup(srv.Close)
	return srv.URL, reached
}

type answer struct {
	status int
	header http.Header
	code   string
}

func do(t *testing.T, method, target string, header map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
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
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" {
			t.Fatalf("%s %s: error body %q is not {\"error\":{\"code\",\"message\"}}", method, target, b)
		}
		a.code = e.Error.Code
	}
	return a
}

const (
	good = "https://app.example.com"
	evil = "https://evil.example"
)

func TestCORS(t *testing.T) {
	base, reached := server(t, Config{AllowedOrigins: []string{good}})
	pub := base + "/v1/channels/news/messages"

	// Preflight from an allowed origin.
	a := do(t, "OPTIONS", pub, map[string]string{
		"Origin": good, "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
	}, "")
	if a.status != 204 || a.header.Get("Access-Control-Allow-Origin") != good {
		t.Fatalf("allowed preflight: %d %v", a.status, a.header)
	}
	for _, want := range []string{"Authorization", "Idempotency-Key", "Last-Event-ID", "Content-Type"} {
		if !strings.Contains(a.header.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", a.header.Get("Access-Control-Allow-Headers"), want)
		}
	}
	if !strings.Contains(a.header.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(strings.Join(a.header.Values("Vary"), ","), "Origin") {
		t.Errorf("preflight headers: %v", a.header)
	}
	// Preflight from another origin.
	a = do(t, "OPTIONS", pub, map[string]string{"Origin": evil, "Access-Control-Request-Method": "POST"}, "")
	if a.status != 403 || a.code != CodeForbiddenOrigin || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %d %s %v", a.status, a.code, a.header)
	}
	// Plain OPTIONS.
	a = do(t, "OPTIONS", pub, nil, "")
	if a.status != 204 || !strings.Contains(a.header.Get("Allow"), "POST") {
		t.Errorf("plain OPTIONS: %d %v", a.status, a.header)
	}
	// Reads: allowed origins get the header, others reach the handler
	// but the browser will not hand them the answer.
	a = do(t, "GET", base+"/v1/channels/news/events", map[string]string{"Origin": good}, "")
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != good || a.header.Get("Access-Control-Expose-Headers") == "" {
		t.Errorf("allowed GET: %d %v", a.status, a.header)
	}
	a = do(t, "GET", base+"/v1/channels/news/events", map[string]string{"Origin": evil}, "")
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(strings.Join(a.header.Values("Vary"), ","), "Origin") {
		t.Errorf("foreign GET: %d %v", a.status, a.header)
	}
	if got := reached.Load(); got != 2 {
		t.Errorf("handler reached %d times, want 2 (the GETs)", got)
	}
}

func TestCSRF(t *testing.T) {
	base, reached := server(t, Config{AllowedOrigins: []string{good}})
	pub := base + "/v1/channels/news/messages"
	self := base // the server's own origin
	cases := []struct {
		name   string
		header map[string]string
		pass   bool
	}{
		{"no-cors text/plain from another origin", map[string]string{"Origin": evil, "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}, false},
		{"form post from another origin", map[string]string{"Origin": evil, "Content-Type": "application/x-www-form-urlencoded"}, false},
		{"JSON from another origin", map[string]string{"Origin": evil, "Content-Type": "application/json"}, false},
		{"form post from an allowed origin (no preflight happened)", map[string]string{"Origin": good, "Content-Type": "multipart/form-data; boundary=x"}, false},
		{"text/plain from an allowed origin", map[string]string{"Origin": good, "Content-Type": "text/plain;charset=UTF-8"}, false},
		{"cross-site without Origin", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, false},
		{"same-site sibling without Origin", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"null origin", map[string]string{"Origin": "null", "Content-Type": "text/plain"}, false},
		{"JSON from an allowed origin (preflighted)", map[string]string{"Origin": good, "Content-Type": "application/json"}, true},
		{"text/plain with Authorization from an allowed origin (preflighted)", map[string]string{"Origin": good, "Content-Type": "text/plain", "Authorization": "Bearer x"}, true},
		{"no Origin: curl, SDKs", map[string]string{"Content-Type": "text/plain"}, true},
		{"same origin", map[string]string{"Origin": self, "Content-Type": "text/plain", "Sec-Fetch-Site": "same-origin"}, true},
		{"fetch metadata says same-origin, no Origin", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
	}
	for _, c := range cases {
		before := reached.Load()
		a := do(t, "POST", pub, c.header, `{"x":1}`)
		got := reached.Load() - before
		switch {
		case c.pass && (a.status != 200 || got != 1):
			t.Errorf("%s: %d %s, handler reached %d; want it to pass", c.name, a.status, a.code, got)
		case !c.pass && (a.status != 403 || a.code != CodeForbiddenOrigin || got != 0):
			t.Errorf("%s: %d %s, handler reached %d; want 403 %s and no handler", c.name, a.status, a.code, got, CodeForbiddenOrigin)
		}
	}
	// DELETE is state-changing too.
	if a := do(t, "DELETE", base+"/v1/connections/x", map[string]string{"Origin": evil}, ""); a.status != 403 {
		t.Errorf("DELETE from another origin: %d", a.status)
	}
}

func TestAllowAnyOriginStillNeedsPreflight(t *testing.T) {
	base, reached := server(t, Config{AllowedOrigins: []string{"*"}})
	a := do(t, "POST", base+"/v1/jobs", map[string]string{"Origin": evil, "Content-Type": "text/plain"}, "{}")
	if a.status != 403 || reached.Load() != 0 {
		t.Errorf(`"*" let a no-cors post through: %d`, a.status)
	}
	a = do(t, "POST", base+"/v1/jobs", map[string]string{"Origin": evil, "Content-Type": "application/json"}, "{}")
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != evil {
		t.Errorf(`"*" refused a preflighted request: %d %v`, a.status, a.header)
	}
}

func TestHosts(t *testing.T) {
	base, reached := server(t, Config{AllowedHosts: append([]string{"*.tether.example", "api.example:8080"}, LoopbackHosts...)})
	u, _ := url.Parse(base)
	port := u.Port()
	cases := []struct {
		host string
		want bool
	}{
		{"127.0.0.1:" + port, true},
		{"localhost:" + port, true},
		{"LOCALHOST", true},
		{"[::1]:" + port, true},
		{"a.tether.example", true},
		{"a.b.tether.example:443", true},
		{"tether.example", false},
		{"api.example:8080", true},
		{"api.example:8081", false},
		{"attacker.example:" + port, false}, // DNS rebinding
		{"127.0.0.1.attacker.example", false},
	}
	for _, c := range cases {
		before := reached.Load()
		a := do(t, "GET", base+"/healthz", map[string]string{"Host": c.host}, "")
		ok := a.status == 200 && reached.Load() == before+1
		if ok != c.want {
			t.Errorf("Host %q: %d %s; want allowed=%v", c.host, a.status, a.code, c.want)
		}
		if !c.want && (a.status != http.StatusMisdirectedRequest || a.code != CodeBadHost) {
			t.Errorf("Host %q: %d %s; want 421 %s", c.host, a.status, a.code, CodeBadHost)
		}
	}
	// No hosts configured: any Host.
	open, _ := server(t, Config{})
	if a := do(t, "GET", open+"/", map[string]string{"Host": "anything.example"}, ""); a.status != 200 {
		t.Errorf("empty AllowedHosts refused: %d", a.status)
	}
	if _, err := New(Config{AllowedHosts: []string{"a/b"}}); err == nil {
		t.Error("bad host accepted")
	}
}
