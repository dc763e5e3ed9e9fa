package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseInterleaved(t *testing.T) {
	for _, c := range []struct {
		args  []string
		pos   []string
		after string
		json  bool
	}{
		{[]string{"news"}, []string{"news"}, "", false},
		{[]string{"news", "--after", "5"}, []string{"news"}, "5", false},
		{[]string{"--json", "news", "--after=7", "x"}, []string{"news", "x"}, "7", true},
		{[]string{"news", "--", "--after", "-1"}, []string{"news", "--after", "-1"}, "", false},
		{[]string{"--after", "1", "--", "-5"}, []string{"-5"}, "1", false},
		{[]string{"ch", "-"}, []string{"ch", "-"}, "", false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		after := fs.String("after", "", "")
		js := fs.Bool("json", false, "")
		pos, err := Parse(fs, c.args)
		if err != nil || !reflect.DeepEqual(pos, c.pos) || *after != c.after || *js != c.json {
			t.Errorf("Parse(%q): pos %q after %q json %v err %v; want %q %q %v", c.args, pos, *after, *js, err, c.pos, c.after, c.json)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := Parse(fs, []string{"x", "-h"}); !IsHelp(err) {
		t.Fatalf("-h after an argument: %v", err)
	}
	if err := Args([]string{"a"}, "CHANNEL", "JSON"); err == nil || err.Error() != "missing JSON" {
		t.Fatalf("Args: %v", err)
	}
	if err := Args([]string{"a", "b"}, "ID"); err == nil || !strings.Contains(err.Error(), `unexpected arguments: ["b"]`) {
		t.Fatalf("Args: %v", err)
	}
}

func TestResolve(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"https://tether.example/base/", "https://tether.example/base"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var cm Common
		cm.Register(fs, "http://127.0.0.1:8080")
		if err := fs.Parse([]string{"--server", c.in}); err != nil {
			t.Fatal(err)
		}
		if err := cm.Resolve(fs); err != nil || cm.Server != c.want {
			t.Errorf("--server %q: %q %v, want %q", c.in, cm.Server, err, c.want)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var cm Common
	cm.Register(fs, "http://127.0.0.1:8080")
	fs.Parse([]string{"--server", "ftp://x"})
	if err := cm.Resolve(fs); err == nil {
		t.Fatal("ftp:// accepted")
	}
	// The environment fills what the flags did not set.
	t.Setenv(EnvServer, "http://from-env:1")
	t.Setenv(EnvToken, "env-token")
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	cm = Common{}
	cm.Register(fs, "http://127.0.0.1:8080")
	fs.Parse([]string{"--token", "flag-token"})
	if err := cm.Resolve(fs); err != nil || cm.Server != "http://from-env:1" || cm.Token != "flag-token" {
		t.Fatalf("env and flags: %+v %v", cm, err)
	}
}

func TestPrintable(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\x1b[31mred\nline\x00", 100, "a [31mred line"},
		{"bad \xff utf8", 100, "bad \ufffd utf8"},
		{"0123456789", 4, "0123..."},
		{"éé", 3, "é..."},
	} {
		if got := Printable(c.in, c.n); got != c.want {
			t.Errorf("Printable(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// API answers: a 2xx decoded, an error body's code, a body without one.
func TestAPIErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(401)
				return
			}
			io.WriteString(w, `{"n":1}`)
		case "/coded":
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"code":"not_found","message":"no job x"}}`)
		default:
			w.WriteHeader(502)
			io.WriteString(w, "<html>bad gateway\x1b</html>")
		}
	}))
	defer srv.Close()
	a := &API{Base: srv.URL, Token: "tok", HTTP: srv.Client()}
	var out struct{ N int }
	if err := a.Do(context.Background(), "GET", "/ok", nil, &out); err != nil || out.N != 1 {
		t.Fatalf("ok: %v %v", out, err)
	}
	var e *Error
	if err := a.Do(context.Background(), "GET", "/coded", nil, nil); !errors.As(err, &e) || e.Code != "not_found" || e.Status != 404 ||
		err.Error() != "not_found (HTTP 404): no job x" {
		t.Fatalf("coded: %v", err)
	}
	if err := a.Do(context.Background(), "GET", "/proxy", nil, nil); !errors.As(err, &e) || e.Code != "http_502" || strings.ContainsRune(err.Error(), 0x1b) {
		t.Fatalf("uncoded: %v", err)
	}
	srv.Client().CloseIdleConnections()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A progress line comes once the wait passed Delay, and a changed line at
// once after that; Done reports that a line was printed.
func TestProgress(t *testing.T) {
	var w syncBuffer
	start := time.Now()
	p := StartProgress(&w, "waiting for x")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.String(), "tether: waiting for x (") {
		if time.Now().After(deadline) {
			t.Fatal("no progress line")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
	if took := time.Since(start); took < Delay {
		t.Fatalf("progress line after %v, before %v", took, Delay)
	}
	p.Update("waiting for y")
	if !strings.Contains(w.String(), "tether: waiting for y (") {
		t.Fatalf("changed line not printed at once: %q", w.String())
	}
	if !p.Done() {
		t.Fatal("Done: no line printed, it says")
	}
}
