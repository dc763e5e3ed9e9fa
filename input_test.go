package tether_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether"
)

// rawRequest sends head (request line and headers, without the blank
// line), then body, on a fresh connection, and returns it with a reader.
func rawRequest(t *testing.T, addr, head, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+"\r\nHost: "+addr+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// wantError reads a response and checks its status and JSON error code.
func wantError(t *testing.T, br *bufio.Reader, status int, code string) *http.Response {
	t.Helper()
	resp := readFinal(t, br)
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &e)
	if resp.StatusCode != status || e.Error.Code != code {
		t.Fatalf("answer %d %s, want %d with code %s", resp.StatusCode, b, status, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if strings.Contains(e.Error.Message, "tether:") {
		t.Fatalf("message %q leaks an internal prefix", e.Error.Message)
	}
	return resp
}

// TestInvalidUTF8HTTP: JSON with invalid UTF-8 inside a string is refused
// (json.Valid accepts it), on publish and on job create.
func TestInvalidUTF8HTTP(t *testing.T) {
	n := startNode(t, nil)
	for _, tc := range []struct{ path, body string }{
		{"/v1/channels/a/messages", "\"\xff\xfe\""},
		{"/v1/channels/a/messages", "{\"k\":\"\xc3\x28\"}"},
		{"/v1/jobs", "{\"type\":\"x\",\"payload\":\"\xed\xa0\x80\"}"},
	} {
		resp, err := http.Post(n.base+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error struct{ Code string } }
		decodeStatus(t, resp, http.StatusBadRequest, &e)
		resp.Body.Close()
		if e.Error.Code != "invalid_utf8" {
			t.Fatalf("POST %s %q: code %q, want invalid_utf8", tc.path, tc.body, e.Error.Code)
		}
	}
	if got := n.poll("a", "after=0&wait=0"); len(got.Messages) != 0 {
		t.Fatalf("stored %d messages, want none", len(got.Messages))
	}
}

// TestMalformedChunked: a bad chunk size is a 400 bad_body, not a 200
// with an empty message.
func TestMalformedChunked(t *testing.T) {
	n := startNode(t, nil)
	_, br := rawRequest(t, n.addr(), "POST /v1/channels/a/messages HTTP/1.1\r\nTransfer-Encoding: chunked", "zz\r\n123\r\n0\r\n\r\n")
	resp := wantError(t, br, http.StatusBadRequest, "bad_body")
	if !resp.Close {
		t.Fatal("the connection stays open after a malformed body")
	}
}

// TestSlowBody: a body that stops (a chunk claiming 100 bytes that sends
// 7, a Content-Length not met) or trickles is cut with 408 body_timeout
// after the grace; a steady one is not.
func TestSlowBody(t *testing.T) {
	n := startNode(t, func(c *tether.Config) { c.HTTP.BodyGrace = 500 * time.Millisecond; c.HTTP.BodyMinRate = 1000 })
	for _, tc := range []struct{ name, head, body string }{
		{"short chunk", "POST /v1/channels/a/messages HTTP/1.1\r\nTransfer-Encoding: chunked", "64\r\n\"abcde\""},
		{"short length", "POST /v1/channels/a/messages HTTP/1.1\r\nContent-Length: 100", "\"abcde\""},
		{"job", "POST /v1/jobs HTTP/1.1\r\nContent-Length: 100", "{\"type\":"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, br := rawRequest(t, n.addr(), tc.head, tc.body)
			wantError(t, br, http.StatusRequestTimeout, "body_timeout")
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("cut after %v, want about the 500ms grace", took)
			}
		})
	}
	t.Run("trickle", func(t *testing.T) {
		c, br := rawRequest(t, n.addr(), "POST /v1/channels/a/messages HTTP/1.1\r\nContent-Length: 1000", "\"")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
		wantError(t, br, http.StatusRequestTimeout, "body_timeout")
	})
	t.Run("steady", func(t *testing.T) {
		// 3000 bytes at 3000 bytes/s: over the grace, within the rate.
		c, br := rawRequest(t, n.addr(), "POST /v1/channels/a/messages HTTP/1.1\r\nContent-Length: 3002", "\"")
		for range 30 {
			c.Write([]byte(strings.Repeat("x", 100)))
			time.Sleep(33 * time.Millisecond) // the client's pace
		}
		c.Write([]byte("\""))
		if resp := readFinal(t, br); resp.StatusCode != http.StatusCreated {
			t.Fatalf("steady body: status %d, want 201", resp.StatusCode)
		}
	})
}

// TestJSONErrors: answers that were redirects or plain text are JSON
// errors with stable codes, and messages carry no internal prefixes.
func TestJSONErrors(t *testing.T) {
	n := startNode(t, nil)
	for _, tc := range []struct {
		name, head, body string
		status           int
		code             string
	}{
		{"empty channel", "POST /v1/channels//messages HTTP/1.1\r\nContent-Length: 1", "1", 400, "bad_channel"},
		{"empty channel poll", "GET /v1/channels//messages HTTP/1.1", "", 400, "bad_channel"},
		{"ws without upgrade", "GET /v1/ws HTTP/1.1", "", 426, "upgrade_required"},
		{"ws refused origin", "GET /v1/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://evil.example", "", 403, "forbidden_origin"},
		{"bad job spec", "POST /v1/jobs HTTP/1.1\r\nContent-Length: 13", `{"type":"?!"}`, 400, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, br := rawRequest(t, n.addr(), tc.head, tc.body)
			wantError(t, br, tc.status, tc.code)
		})
	}
}

// TestJobWithoutWorker: a job of a type no worker runs is answered with a
// warning, or refused with 409 no_worker when workers are required.
func TestJobWithoutWorker(t *testing.T) {
	n := startNode(t, nil)
	resp, err := http.Post(n.base+"/v1/jobs", "application/json", strings.NewReader(`{"type":"mail"}`))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ ID, Warning string }
	decodeStatus(t, resp, http.StatusCreated, &ref)
	resp.Body.Close()
	if ref.ID == "" || !strings.Contains(ref.Warning, `"mail"`) {
		t.Fatalf("create: %+v, want a job with a warning naming its type", ref)
	}
	if got := n.metric("tether_jobs_created_without_worker_total", nil); got != 1 {
		t.Fatalf("tether_jobs_created_without_worker_total = %v, want 1", got)
	}

	strict := startNode(t, func(c *tether.Config) { c.Jobs.RequireWorker = true })
	_, br := rawRequest(t, strict.addr(), "POST /v1/jobs HTTP/1.1\r\nContent-Length: 15", `{"type":"mail"}`)
	wantError(t, br, http.StatusConflict, "no_worker")
}
