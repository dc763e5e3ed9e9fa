package tether_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/client"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/wire"
	"github.com/tether-run/tether/worker"
)

// The access-control tests run a node with tokens on real sockets: HTTP
// (long-poll, SSE, publish, jobs, admin), WebSocket and TCP.

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// sign returns a token for sub, valid for ttl (negative: expired), with
// perm; key nil means testSecret.
func sign(t *testing.T, key []byte, sub string, ttl time.Duration, perm auth.Permissions) string {
	t.Helper()
	if key == nil {
		key = testSecret
	}
	now := time.Now()
	c := auth.Claims{Tether: perm}
	c.Subject = sub
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	tok, err := auth.Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startSecure starts a node with tokens and a TCP listener.
func startSecure(t *testing.T, edit func(*tether.Config)) *node {
	return startNode(t, func(c *tether.Config) {
		c.Tokens.Secret = testSecret
		c.Tokens.Leeway = -1 // none: expiry tests are exact
		c.TCPAddr = "127.0.0.1:0"
		if edit != nil {
			edit(c)
		}
	})
}

// httpDo sends a request with a Bearer token ("" for none) and returns the
// status, the error code of the body (if any) and the body.
func httpDo(t *testing.T, method, url, token, body string) (int, string, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code, b, resp.Header
}

// framed is a WebSocket or TCP client speaking the framed protocol.
type framed struct {
	t    *testing.T
	send func(v any)
	recv func() (map[string]any, error)
	stop func()
}

// next returns the next frame that is not a ping.
func (f *framed) next() map[string]any {
	f.t.Helper()
	for {
		m, err := f.recv()
		if err != nil {
			f.t.Fatalf("read: %v", err)
		}
		if m["type"] == "ping" {
			f.send(map[string]any{"type": "pong", "id": m["id"]})
			continue
		}
		return m
	}
}

// request sends a request and returns the error code of its answer, ""
// when it succeeded. Frames of other kinds before it are skipped.
func (f *framed) request(req map[string]any) string {
	f.t.Helper()
	f.send(req)
	for {
		m := f.next()
		if m["id"] == req["id"] {
			if m["type"] == "reply" || m["type"] == "pong" {
				return ""
			}
			return fmt.Sprint(m["code"])
		}
		if m["type"] == "error" && m["id"] == nil && m["channel"] == nil {
			return fmt.Sprint(m["code"]) // the connection was refused or ended
		}
	}
}

func dialWS(t *testing.T, n *node, token string) *framed {
	t.Helper()
	u := "ws://" + n.addr() + "/v1/ws"
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return &framed{
		t: t,
		send: func(v any) {
			b, _ := json.Marshal(v)
			c.Write(context.Background(), websocket.MessageText, b)
		},
		recv: func() (map[string]any, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, b, err := c.Read(ctx)
			if err != nil {
				return nil, err
			}
			var m map[string]any
			return m, json.Unmarshal(b, &m)
		},
		stop: func() { c.Close(websocket.StatusNormalClosure, "") },
	}
}

func dialTCP(t *testing.T, n *node, token string) *framed {
	t.Helper()
	c, err := net.Dial("tcp", n.srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	f := &framed{
		t: t,
		send: func(v any) {
			b, _ := json.Marshal(v)
			c.Write(append(b, '\n'))
		},
		recv: func() (map[string]any, error) {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := br.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			var m map[string]any
			return m, json.Unmarshal(line, &m)
		},
		stop: func() { c.Close() },
	}
	hello := map[string]any{"type": "hello"}
	if token != "" {
		hello["token"] = token
	}
	f.send(hello)
	return f
}

// access asks one transport whether token may read (or publish to)
// channel, and returns the error code ("" when allowed).
type access func(t *testing.T, n *node, token, channel string) string

var readers = map[string]access{
	"long-poll": func(t *testing.T, n *node, token, ch string) string {
		status, code, body, h := httpDo(t, "GET", n.base+"/v1/channels/"+ch+"/messages?after=0&wait=0", token, "")
		checkStatus(t, status, code, body, h)
		return code
	},
	"sse": func(t *testing.T, n *node, token, ch string) string {
		u := n.base + "/v1/channels/" + ch + "/events?after=0"
		if token != "" {
			u += "&token=" + url.QueryEscape(token) // as EventSource sends it
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("sse: content type %q", ct)
			}
			return ""
		}
		b, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		json.Unmarshal(b, &e)
		checkStatus(t, resp.StatusCode, e.Error.Code, b, resp.Header)
		return e.Error.Code
	},
	"websocket": func(t *testing.T, n *node, token, ch string) string {
		return dialWS(t, n, token).request(map[string]any{"type": "subscribe", "id": "1", "channel": ch, "after": "0"})
	},
	"tcp": func(t *testing.T, n *node, token, ch string) string {
		return dialTCP(t, n, token).request(map[string]any{"type": "subscribe", "id": "1", "channel": ch, "after": "0"})
	},
}

var publishers = map[string]access{
	"http": func(t *testing.T, n *node, token, ch string) string {
		status, code, body, h := httpDo(t, "POST", n.base+"/v1/channels/"+ch+"/messages", token, `{"x":1}`)
		if status != http.StatusCreated {
			checkStatus(t, status, code, body, h)
		}
		return code
	},
	"websocket": func(t *testing.T, n *node, token, ch string) string {
		return dialWS(t, n, token).request(map[string]any{"type": "publish", "id": "1", "channel": ch, "data": map[string]int{"x": 1}})
	},
	"tcp": func(t *testing.T, n *node, token, ch string) string {
		return dialTCP(t, n, token).request(map[string]any{"type": "publish", "id": "1", "channel": ch, "data": map[string]int{"x": 1}})
	},
}

// checkStatus checks that an HTTP denial has the status of its code.
func checkStatus(t *testing.T, status int, code string, body []byte, h http.Header) {
	t.Helper()
	want := map[string]int{"": 200, "unauthorized": 401, "token_expired": 401, "forbidden": 403}[code]
	if want == 0 {
		return
	}
	if status != want {
		t.Fatalf("status %d for code %q, want %d: %s", status, code, want, body)
	}
	if want == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: %v", h)
	}
}

func TestAccessMatrix(t *testing.T) {
	n := startSecure(t, nil)
	perm := auth.Permissions{Subscribe: []string{"a.*", "b.>"}, Publish: []string{"a.*", "b.>"}}
	good := sign(t, nil, "alice", time.Hour, perm)
	expired := sign(t, nil, "alice", -time.Minute, perm)
	wrongKey := sign(t, []byte("another-secret-another-secret-another"), "alice", time.Hour, perm)
	all := sign(t, nil, "root", time.Hour, auth.Permissions{Subscribe: []string{">"}, Publish: []string{">"}})
	jobID := createJob(t, n, sign(t, nil, "carol", time.Hour, auth.Permissions{Jobs: []string{"t"}}), `{"type":"t"}`)

	cases := []struct {
		name, token, channel, want string
	}{
		{"no token", "", "a.x", "unauthorized"},
		{"expired", expired, "a.x", "token_expired"},
		{"wrong signature", wrongKey, "a.x", "unauthorized"},
		{"garbage", "not.a.token", "a.x", "unauthorized"},
		{"allowed a.*", good, "a.x", ""},
		{"channel B", good, "c.x", "forbidden"},
		{"* is one token", good, "a.x.y", "forbidden"},
		{"* needs a token", good, "a", "forbidden"},
		{"> the rest", good, "b.x.y", ""},
		{"> needs one token", good, "b", "forbidden"},
		{"> everything", all, "c.x", ""},
	}
	for tr, read := range readers {
		for _, c := range cases {
			t.Run("read/"+tr+"/"+c.name, func(t *testing.T) {
				if got := read(t, n, c.token, c.channel); got != c.want {
					t.Fatalf("got %q, want %q", got, c.want)
				}
			})
		}
		// Server-owned channels: ">" does not read other users' jobs.
		for _, ch := range []string{"job." + jobID, "jobs"} {
			t.Run("read/"+tr+"/> not "+ch, func(t *testing.T) {
				if got := read(t, n, all, ch); got != "forbidden" {
					t.Fatalf("got %q, want forbidden", got)
				}
			})
		}
	}
	for tr, pub := range publishers {
		for _, c := range cases {
			t.Run("publish/"+tr+"/"+c.name, func(t *testing.T) {
				if got := pub(t, n, c.token, c.channel); got != c.want {
					t.Fatalf("got %q, want %q", got, c.want)
				}
			})
		}
	}
}

// createJob creates a job with token and returns its id.
func createJob(t *testing.T, n *node, token, spec string) string {
	t.Helper()
	status, code, body, _ := httpDo(t, "POST", n.base+"/v1/jobs", token, spec)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s %s", status, code, body)
	}
	var ref struct{ ID string }
	json.Unmarshal(body, &ref)
	return ref.ID
}

func getJob(t *testing.T, n *node, token, id string) (int, map[string]any) {
	t.Helper()
	status, _, body, _ := httpDo(t, "GET", n.base+"/v1/jobs/"+id, token, "")
	var j map[string]any
	json.Unmarshal(body, &j)
	return status, j
}

// The forged outcome: two publishes to a job's channel, running then
// succeeded, are refused on every transport even with publish [">"], and
// the job stays queued.
func TestForgedJobOutcomeRefused(t *testing.T) {
	n := startSecure(t, nil)
	tok := sign(t, nil, "mallory", time.Hour, auth.Permissions{
		Subscribe: []string{">"}, Publish: []string{">"}, Jobs: []string{"t"},
	})
	id := createJob(t, n, tok, `{"type":"t"}`)
	forged := []string{
		`{"event":"running","attempt":1,"worker":"w"}`,
		`{"event":"succeeded","attempt":1,"result":{"forged":true}}`,
	}
	for _, ch := range []string{"job." + id, "jobs"} {
		for _, ev := range forged {
			status, code, body, _ := httpDo(t, "POST", n.base+"/v1/channels/"+ch+"/messages", tok, ev)
			if status != http.StatusForbidden || code != "forbidden" {
				t.Fatalf("http publish to %s: %d %s %s", ch, status, code, body)
			}
		}
		for tr, dial := range map[string]func(*testing.T, *node, string) *framed{"websocket": dialWS, "tcp": dialTCP} {
			f := dial(t, n, tok)
			for i, ev := range forged {
				code := f.request(map[string]any{"type": "publish", "id": fmt.Sprint(i), "channel": ch, "data": json.RawMessage(ev)})
				if code != "forbidden" {
					t.Fatalf("%s publish to %s: %q, want forbidden", tr, ch, code)
				}
			}
		}
	}
	status, j := getJob(t, n, tok, id)
	if status != 200 || j["state"] != "queued" || j["result"] != nil {
		t.Fatalf("job after the forgery: %d %v", status, j)
	}
}

// A job's creator reads and cancels it; another user can do neither.
func TestJobCreatorOnly(t *testing.T) {
	n := startSecure(t, nil)
	alice := sign(t, nil, "alice", time.Hour, auth.Permissions{Jobs: []string{"t"}})
	bob := sign(t, nil, "bob", time.Hour, auth.Permissions{Jobs: []string{"t"}, Subscribe: []string{">"}})
	admin := sign(t, nil, "ops", time.Hour, auth.Permissions{Admin: true})
	id := createJob(t, n, alice, `{"type":"t","on_disconnect":"detach"}`)

	if status, code, body, _ := httpDo(t, "POST", n.base+"/v1/jobs", bob, `{"type":"other"}`); status != 403 || code != "forbidden" {
		t.Fatalf("create of a type not in jobs: %d %s", status, body)
	}
	if status, j := getJob(t, n, alice, id); status != 200 || j["sub"] != "alice" {
		t.Fatalf("creator's GET: %d %v", status, j)
	}
	if status, _ := getJob(t, n, bob, id); status != 403 {
		t.Fatalf("bob's GET: %d, want 403", status)
	}
	// Following: the creator subscribes to the job's channel without a
	// pattern naming it; bob, with ">", cannot.
	if code := dialWS(t, n, alice).request(map[string]any{"type": "subscribe", "id": "1", "channel": "job." + id, "after": "0"}); code != "" {
		t.Fatalf("creator follows: %q", code)
	}
	if code := dialTCP(t, n, bob).request(map[string]any{"type": "subscribe", "id": "1", "channel": "job." + id, "after": "0"}); code != "forbidden" {
		t.Fatalf("bob follows: %q", code)
	}
	// Listing shows one's own jobs.
	_, _, body, _ := httpDo(t, "GET", n.base+"/v1/jobs", bob, "")
	if strings.Contains(string(body), id) {
		t.Fatalf("bob lists alice's job: %s", body)
	}
	_, _, body, _ = httpDo(t, "GET", n.base+"/v1/jobs", alice, "")
	if !strings.Contains(string(body), id) {
		t.Fatalf("alice does not list her job: %s", body)
	}
	if status, code, body, _ := httpDo(t, "POST", n.base+"/v1/jobs/"+id+"/cancel", bob, ""); status != 403 || code != "forbidden" {
		t.Fatalf("bob's cancel: %d %s", status, body)
	}
	if _, j := getJob(t, n, admin, id); j["state"] != "queued" {
		t.Fatalf("after bob's cancel: %v", j)
	}
	if status, _, body, _ := httpDo(t, "POST", n.base+"/v1/jobs/"+id+"/cancel", alice, ""); status != 200 || !strings.Contains(string(body), `"canceled"`) {
		t.Fatalf("alice's cancel: %d %s", status, body)
	}
	// The idempotency key is per user: bob's same key is another job.
	k1 := createJobKey(t, n, alice, "k")
	k2 := createJobKey(t, n, bob, "k")
	if k1 == k2 {
		t.Fatal("one idempotency key gave bob alice's job")
	}
}

func createJobKey(t *testing.T, n *node, token, key string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", n.base+"/v1/jobs", strings.NewReader(`{"type":"t"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ref struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&ref)
	return ref.ID
}

// A worker token for type a never receives a job of type b, cannot attach
// for b, and cannot complete another worker's attempt.
func TestRogueWorker(t *testing.T) {
	n := startSecure(t, nil)
	creator := sign(t, nil, "alice", time.Hour, auth.Permissions{Jobs: []string{"*"}})
	rogueTok := sign(t, nil, "mallory", time.Hour, auth.Permissions{Worker: []string{"a"}})
	goodTok := sign(t, nil, "svc", time.Hour, auth.Permissions{Worker: []string{"b"}})
	plain := sign(t, nil, "bob", time.Hour, auth.Permissions{Subscribe: []string{">"}})

	if code := dialTCP(t, n, plain).request(map[string]any{"type": "worker", "id": "w", "worker": "w1", "types": []string{"a"}}); code != "forbidden" {
		t.Fatalf("a token without worker attaches: %q", code)
	}
	rogue := dialWS(t, n, rogueTok)
	if code := rogue.request(map[string]any{"type": "worker", "id": "w", "worker": "w1", "types": []string{"a", "b"}}); code != "forbidden" {
		t.Fatalf("worker for a asks for b: %q", code)
	}
	if code := rogue.request(map[string]any{"type": "worker", "id": "w2", "worker": "w1", "types": []string{"a"}, "concurrency": 4}); code != "" {
		t.Fatalf("worker for a: %q", code)
	}
	bID := createJob(t, n, creator, `{"type":"b","payload":{"secret":"s3cret"}}`)
	aID := createJob(t, n, creator, `{"type":"a"}`)
	// The rogue gets a, never b.
	m := rogue.next()
	if m["type"] != "job" || m["job"] != aID {
		t.Fatalf("rogue got %v, want job %s", m, aID)
	}
	// The real worker for b (same worker id!) gets b.
	good := dialTCP(t, n, goodTok)
	if code := good.request(map[string]any{"type": "worker", "id": "w", "worker": "w1", "types": []string{"b"}}); code != "" {
		t.Fatalf("worker for b: %q", code)
	}
	jb := good.next()
	if jb["type"] != "job" || jb["job"] != bID {
		t.Fatalf("worker b got %v", jb)
	}
	// The rogue cannot complete b's attempt, though it names the worker
	// id "w1" too: worker ids are per user.
	if code := rogue.request(map[string]any{"type": "job.done", "id": "d", "job": bID, "attempt": jb["attempt"], "result": map[string]bool{"forged": true}}); code != "fenced" {
		t.Fatalf("rogue completes b: %q, want fenced", code)
	}
	if code := good.request(map[string]any{"type": "job.done", "id": "d", "job": bID, "attempt": jb["attempt"], "result": 42}); code != "" {
		t.Fatalf("worker b completes: %q", code)
	}
	admin := sign(t, nil, "ops", time.Hour, auth.Permissions{Admin: true})
	if _, j := getJob(t, n, admin, bID); j["state"] != "succeeded" || fmt.Sprint(j["result"]) != "42" || j["worker"] != "svc/w1" {
		t.Fatalf("job b: %v", j)
	}
}

// The admin API is for admins, and lists each connection's sub.
func TestAdminAPI(t *testing.T) {
	n := startSecure(t, nil)
	alice := sign(t, nil, "alice", time.Hour, auth.Permissions{Subscribe: []string{"a.*"}})
	admin := sign(t, nil, "ops", time.Hour, auth.Permissions{Admin: true})
	f := dialTCP(t, n, alice)
	if code := f.request(map[string]any{"type": "subscribe", "id": "1", "channel": "a.x"}); code != "" {
		t.Fatal(code)
	}
	for _, tok := range []string{"", alice} {
		status, code, _, _ := httpDo(t, "GET", n.base+"/v1/connections", tok, "")
		if want := map[string]int{"": 401, alice: 403}[tok]; status != want {
			t.Fatalf("GET /v1/connections: %d %s, want %d", status, code, want)
		}
		if status, _, _, _ := httpDo(t, "POST", n.base+"/v1/connections/x/close", tok, ""); status < 401 || status > 403 {
			t.Fatalf("close without admin: %d", status)
		}
	}
	status, _, body, _ := httpDo(t, "GET", n.base+"/v1/connections", admin, "")
	if status != 200 || !strings.Contains(string(body), `"sub":"alice"`) {
		t.Fatalf("admin list: %d %s", status, body)
	}
}

// A token that expires ends the connection with token_expired unless the
// client refreshed it; a refresh for another sub is refused.
func TestTokenExpiryAndRefresh(t *testing.T) {
	n := startSecure(t, nil)
	perm := auth.Permissions{Subscribe: []string{"a.*"}, Publish: []string{"a.*"}}
	for tr, dial := range map[string]func(*testing.T, *node, string) *framed{"websocket": dialWS, "tcp": dialTCP} {
		t.Run(tr, func(t *testing.T) {
			// Expiring: the end comes as an error frame without an id.
			short := dial(t, n, sign(t, nil, "alice", 2*time.Second, perm))
			if code := short.request(map[string]any{"type": "subscribe", "id": "1", "channel": "a.x"}); code != "" {
				t.Fatal(code)
			}
			start := time.Now()
			for {
				m := short.next()
				if m["type"] == "error" && m["id"] == nil {
					if m["code"] != "token_expired" {
						t.Fatalf("end frame %v", m)
					}
					break
				}
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("ended after %v", d)
			}
			if _, err := short.recv(); err == nil {
				t.Fatal("the connection goes on after token_expired")
			}

			// Refreshed: it outlives the first token.
			f := dial(t, n, sign(t, nil, "alice", 2*time.Second, perm))
			if code := f.request(map[string]any{"type": "refresh", "id": "r0", "token": sign(t, nil, "bob", time.Hour, perm)}); code != "forbidden" {
				t.Fatalf("refresh as another sub: %q", code)
			}
			if code := f.request(map[string]any{"type": "refresh", "id": "r1", "token": "garbage"}); code != "unauthorized" {
				t.Fatalf("refresh with garbage: %q", code)
			}
			// The new token no longer allows a.y: its subscription ends.
			if code := f.request(map[string]any{"type": "subscribe", "id": "s", "channel": "a.y"}); code != "" {
				t.Fatal(code)
			}
			narrower := auth.Permissions{Subscribe: []string{"a.x"}, Publish: []string{"a.*"}}
			if code := f.request(map[string]any{"type": "refresh", "id": "r2", "token": sign(t, nil, "alice", time.Hour, narrower)}); code != "" {
				t.Fatalf("refresh: %q", code)
			}
			if m := f.next(); m["type"] != "error" || m["code"] != "forbidden" || m["channel"] != "a.y" {
				t.Fatalf("after refresh: %v", m)
			}
			for time.Since(start) < 3500*time.Millisecond { // past the first token's expiry
				if code := f.request(map[string]any{"type": "ping", "id": "p"}); code != "" {
					t.Fatalf("after refresh: %q", code)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if code := f.request(map[string]any{"type": "publish", "id": "p2", "channel": "a.x", "data": 1}); code != "" {
				t.Fatalf("publish after the first token's expiry: %q", code)
			}
		})
	}
}

// Session keys are per user: another user presenting the same key neither
// waits for the first connection nor makes it wait.
func TestSessionKeyNotSquatted(t *testing.T) {
	n := startSecure(t, nil)
	perm := auth.Permissions{Subscribe: []string{"a.*"}}
	victim := dialTCPKey(t, n, sign(t, nil, "alice", time.Hour, perm), "k1")
	if code := victim.request(map[string]any{"type": "ping", "id": "1"}); code != "" {
		t.Fatal(code)
	}
	squatter := dialTCPKey(t, n, sign(t, nil, "mallory", time.Hour, perm), "k1")
	if code := squatter.request(map[string]any{"type": "ping", "id": "1"}); code != "" {
		t.Fatalf("squatter: %q", code)
	}
}

func dialTCPKey(t *testing.T, n *node, token, key string) *framed {
	t.Helper()
	c, err := net.Dial("tcp", n.srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	f := &framed{t: t,
		send: func(v any) { b, _ := json.Marshal(v); c.Write(append(b, '\n')) },
		recv: func() (map[string]any, error) {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := br.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			var m map[string]any
			return m, json.Unmarshal(line, &m)
		},
	}
	f.send(map[string]any{"type": "hello", "token": token, "session": key})
	return f
}

// In open mode the node refuses a non-loopback address unless insecure.
func TestOpenModeRefusesPublicAddr(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		srv, err := tether.New(tether.Config{Addr: "0.0.0.0:0", DataDir: t.TempDir(), Insecure: insecure})
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Start(context.Background())
		if insecure && err != nil || !insecure && (err == nil || !strings.Contains(err.Error(), "open mode")) {
			t.Errorf("insecure %v: Start: %v", insecure, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
	// With tokens, a public address is fine.
	srv, err := tether.New(tether.Config{Addr: "0.0.0.0:0", DataDir: t.TempDir(), Tokens: auth.Config{Secret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.Open() {
		t.Fatal("a node with a secret is open")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// Serve and ServeTCP apply the same rule to listeners the caller opened:
// in open mode one on a non-loopback address is refused, one on loopback
// is served.
func TestOpenModeServeRefusesPublicListener(t *testing.T) {
	srv, err := tether.New(tether.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	for name, serve := range map[string]func(net.Listener) error{"Serve": srv.Serve, "ServeTCP": srv.ServeTCP} {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		err = serve(ln)
		ln.Close()
		if err == nil || !strings.Contains(err.Error(), "open mode") {
			t.Errorf("%s on %s in open mode: %v; want a refusal", name, ln.Addr(), err)
		}
	}
	ln, err := tether.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if status, _, body, _ := httpDo(t, "GET", "http://"+ln.Addr().String()+"/healthz", "", ""); status != 200 {
		t.Fatalf("healthz on the loopback listener: %d %s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if err := <-served; err != nil {
		t.Fatalf("Serve on loopback: %v", err)
	}
}

// The Go worker and client carry a token: the worker runs its type over
// WebSocket and TCP; the client publishes where its token allows and is
// refused elsewhere.
func TestGoWorkerAndClientWithTokens(t *testing.T) {
	n := startSecure(t, nil)
	creator := sign(t, nil, "alice", time.Hour, auth.Permissions{Jobs: []string{"greet"}, Publish: []string{"a.*"}, Subscribe: []string{"a.*"}})
	for _, url := range []string{"ws://" + n.addr(), "tcp://" + n.srv.TCPAddr().String()} {
		w, err := worker.New(worker.Config{URL: url, Token: sign(t, nil, "svc", time.Hour, auth.Permissions{Worker: []string{"greet"}})})
		if err != nil {
			t.Fatal(err)
		}
		w.Handle("greet", func(ctx context.Context, job *worker.Job) (any, error) { return "hi", nil })
		ctx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- w.Run(ctx) }()
		status, _, body, _ := httpDo(t, "POST", n.base+"/v1/jobs?wait=10s", creator, `{"type":"greet"}`)
		stop()
		<-ran
		if status != 200 || !strings.Contains(string(body), `"result":"hi"`) {
			t.Fatalf("%s: %d %s", url, status, body)
		}
	}
	for _, url := range []string{"ws://" + n.addr(), "tcp://" + n.srv.TCPAddr().String()} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := client.Dial(ctx, url, client.Config{Token: creator, HTTPURL: n.base})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(ctx, "a.x", 1); err != nil {
			t.Fatalf("%s: publish: %v", url, err)
		}
		_, err = c.Publish(ctx, "b.x", 1)
		if ef, ok := err.(*wire.ErrorFrame); !ok || ef.Code != wire.CodeForbidden {
			t.Fatalf("%s: publish to b.x: %v", url, err)
		}
		c.Close()
		cancel()
	}
}

// An SSE stream whose token expires ends with an error event; the
// EventSource's reconnect with the same token is refused.
func TestSSETokenExpiry(t *testing.T) {
	n := startSecure(t, nil)
	tok := sign(t, nil, "alice", 2*time.Second, auth.Permissions{Subscribe: []string{"a"}})
	resp, err := http.Get(n.base + "/v1/channels/a/events?token=" + url.QueryEscape(tok))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body) // until the server ends the stream
		done <- string(b)
	}()
	select {
	case body := <-done:
		if !strings.Contains(body, "event: error\ndata: {\"code\":\"token_expired\"") {
			t.Fatalf("stream ended with %q", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived its token")
	}
	status, code, _, _ := httpDo(t, "GET", n.base+"/v1/channels/a/events?token="+url.QueryEscape(tok), "", "")
	if status != 401 || code != "token_expired" {
		t.Fatalf("reconnect: %d %s", status, code)
	}
	if got := n.metric("tether_connection_ends_total", map[string]string{"transport": "sse", "reason": "token-expired"}); got != 1 {
		t.Fatalf("ends counted: %v", got)
	}
}

// A Go Conn with a TokenSource refreshes its token before it expires and
// outlives it, over WebSocket and TCP.
func TestGoConnRefreshesToken(t *testing.T) {
	n := startSecure(t, nil)
	perm := auth.Permissions{Subscribe: []string{"a.*"}, Publish: []string{"a.*"}}
	for _, url := range []string{"ws://" + n.addr(), "tcp://" + n.srv.TCPAddr().String()} {
		var minted atomic.Int32
		src := func(context.Context) (string, error) {
			minted.Add(1)
			return sign(t, nil, "alice", 3*time.Second, perm), nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := client.DialConn(ctx, url, client.ConnConfig{TokenSource: src, HeartbeatTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(7 * time.Second) // two lifetimes of a token
		for time.Now().Before(deadline) {
			if _, err := c.Request(ctx, wire.ClientFrame{Type: wire.TypePublish, Channel: "a.x", Data: json.RawMessage(`1`)}); err != nil {
				t.Fatalf("%s: publish after %d tokens: %v (conn: %v)", url, minted.Load(), err, c.Err())
			}
			time.Sleep(250 * time.Millisecond)
		}
		if minted.Load() < 3 {
			t.Fatalf("%s: %d tokens minted, want a refresh per lifetime", url, minted.Load())
		}
		c.Close()
		cancel()
	}
}

// A client with a fixed token that the server refuses for good (a bad
// signature: unauthorized; one that expires while connected:
// token_expired) closes with the refusal instead of reconnecting to be
// refused again forever, and a publish returns the refusal.
func TestClientFixedTokenRefusedForGood(t *testing.T) {
	n := startSecure(t, nil)
	perm := auth.Permissions{Publish: []string{"a.*"}, Subscribe: []string{"a.*"}}
	for _, tc := range []struct {
		name, token string
		want        wire.Code
	}{
		{"bad signature", sign(t, []byte("another secret of at least 32 bytes!!"), "eve", time.Hour, perm), wire.CodeUnauthorized},
		{"expires while connected", sign(t, nil, "ann", 2*time.Second, perm), wire.CodeTokenExpired},
	} {
		for _, url := range []string{"ws://" + n.addr(), "tcp://" + n.srv.TCPAddr().String()} {
			states := make(chan client.StateChange, 64)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			c, err := client.Dial(ctx, url, client.Config{Token: tc.token, HTTPURL: n.base, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
				OnState: func(sc client.StateChange) { states <- sc }})
			cancel()
			if err != nil {
				// Refused before the first connection was up: Dial says so.
				t.Logf("%s, %s: Dial: %v", tc.name, url, err)
				if ef, ok := err.(*wire.ErrorFrame); !ok || ef.Code != tc.want {
					t.Errorf("%s, %s: Dial: %v, want %s", tc.name, url, err, tc.want)
				}
				continue
			}
			var closed client.StateChange
			timeout := time.After(15 * time.Second)
			for closed.State != client.StateClosed {
				select {
				case closed = <-states:
				case <-timeout:
					t.Fatalf("%s, %s: the client never closed", tc.name, url)
				}
			}
			t.Logf("%s, %s: connected, then closed for %s", tc.name, url, closed.Reason)
			if closed.Reason != string(tc.want) {
				t.Errorf("%s, %s: closed for %q (%v), want %q", tc.name, url, closed.Reason, closed.Err, tc.want)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			_, err = c.Publish(ctx, "a.x", 1)
			cancel()
			if ef, ok := err.(*wire.ErrorFrame); !ok || ef.Code != tc.want {
				t.Errorf("%s, %s: publish after the refusal: %v, want %s", tc.name, url, err, tc.want)
			}
			c.Close()
		}
	}
}
