package tether_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tether-run/tether"
)

// node is a real server on 127.0.0.1:0 with its data in a temp dir.
type node struct {
	t    *testing.T
	srv  *tether.Node
	reg  *prometheus.Registry
	base string
	dir  string
}

// startNode starts a node listening on its own port; edit adjusts the
// config first, and opts add dependencies.
func startNode(t *testing.T, edit func(*tether.Config), opts ...tether.Option) *node {
	t.Helper()
	n := &node{t: t, reg: prometheus.NewRegistry(), dir: t.TempDir()}
	cfg := tether.Config{Addr: "127.0.0.1:0", DataDir: n.dir}
	if edit != nil {
		edit(&cfg)
	}
	opts = append([]tether.Option{
		tether.WithMetrics(n.reg),
		tether.WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}, opts...)
	srv, err := tether.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	n.base = "http://" + srv.Addr().String()
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Errorf("stop: %v", err)
	}
}

func (n *node) addr() string { return n.srv.Addr().String() }

// testWriter sends logs to t.Log so they show only for failing tests.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type publishAnswer struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
}

// publish posts body to channel and returns the cursor.
func (n *node) publish(channel, body string) string {
	n.t.Helper()
	resp, err := http.Post(n.base+"/v1/channels/"+channel+"/messages", "application/json", strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a publishAnswer
	decodeStatus(n.t, resp, http.StatusCreated, &a)
	return a.ID
}

type pollAnswer struct {
	Messages []struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
		Time time.Time       `json:"time"`
	} `json:"messages"`
	Next     string `json:"next"`
	Gap      bool   `json:"gap"`
	Earliest string `json:"earliest"`
}

func (a pollAnswer) datas() []string {
	out := make([]string, len(a.Messages))
	for i, m := range a.Messages {
		out[i] = string(m.Data)
	}
	return out
}

// poll does one long-poll with the given query.
func (n *node) poll(channel, query string) pollAnswer {
	n.t.Helper()
	resp, err := http.Get(n.base + "/v1/channels/" + channel + "/messages?" + query)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a pollAnswer
	decodeStatus(n.t, resp, http.StatusOK, &a)
	return a
}

func decodeStatus(t *testing.T, resp *http.Response, want int, v any) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// metric returns the value of the counter or gauge name whose labels
// include want, summed over matching series.
func (n *node) metric(name string, want map[string]string) float64 {
	n.t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		n.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, want) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitingPolls waits until n long-polls are parked in the store.
func (n *node) waitingPolls(count int) {
	n.t.Helper()
	eventually(n.t, 5*time.Second, fmt.Sprintf("%d long-polls waiting", count), func() bool {
		return n.metric("tether_http_waiting_requests", map[string]string{"route": "poll"}) == float64(count)
	})
}

// ends returns how many requests on route ended with reason.
func (n *node) ends(route, reason string) float64 {
	return n.metric("tether_http_request_ends_total", map[string]string{"route": route, "reason": reason})
}

// rawGET opens a TCP connection and sends an HTTP/1.1 GET for path.
func rawGET(t *testing.T, addr, path string, header ...string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, addr)
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

// readFinal reads responses from br, skipping 1xx informational ones, and
// returns the final response.
func readFinal(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		if resp.StatusCode >= 200 {
			return resp
		}
	}
}
