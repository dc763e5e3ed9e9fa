package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder collects a channel's events and signals each one.
type recorder struct {
	mu     sync.Mutex
	events []Event
	grew   chan struct{}
}

func newRecorder() *recorder { return &recorder{grew: make(chan struct{})} }

func (r *recorder) handle(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	close(r.grew)
	r.grew = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// waitN waits until n events of kind came, and returns them.
func (r *recorder) waitN(t testing.TB, within time.Duration, kind EventKind, n int) []Event {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		var got []Event
		for _, ev := range r.events {
			if ev.Kind == kind {
				got = append(got, ev)
			}
		}
		grew := r.grew
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-grew:
		case <-deadline.C:
			t.Fatalf("%d %v events within %v, want %d", len(got), kind, within, n)
		}
	}
}

// states collects a client's state changes.
type states struct {
	mu   sync.Mutex
	all  []StateChange
	grew chan struct{}
}

func newStates() *states { return &states{grew: make(chan struct{})} }

func (s *states) on(sc StateChange) {
	s.mu.Lock()
	s.all = append(s.all, sc)
	close(s.grew)
	s.grew = make(chan struct{})
	s.mu.Unlock()
}

// wait waits for a change at index from or later that matches, and
// returns it with the index after it.
func (s *states) wait(t testing.TB, within time.Duration, from int, what string, match func(StateChange) bool) (StateChange, int) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for i := from; ; {
		s.mu.Lock()
		all, grew := s.all, s.grew
		s.mu.Unlock()
		for ; i < len(all); i++ {
			if match(all[i]) {
				return all[i], i + 1
			}
		}
		select {
		case <-grew:
		case <-deadline.C:
			t.Fatalf("no state change %s within %v; had %+v", what, within, all)
		}
	}
}

func dial(t testing.TB, url string, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// noUpgradeProxy forwards HTTP to target but refuses WebSocket upgrades,
// as some corporate proxies do, and, with blockSSE, SSE streams too. It
// counts the refusals.
type noUpgradeProxy struct {
	*httptest.Server
	mu      sync.Mutex
	refused int
}

func startNoUpgradeProxy(t *testing.T, target string) *noUpgradeProxy {
	return startBlockingProxy(t, target, false)
}

func startBlockingProxy(t *testing.T, target string, blockSSE bool) *noUpgradeProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{DisableKeepAlives: true}
	rp.FlushInterval = -1
	p := &noUpgradeProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || blockSSE && strings.HasSuffix(r.URL.Path, "/events") {
			p.mu.Lock()
			p.refused++
			p.mu.Unlock()
			http.Error(w, "upgrades are not allowed here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// hasSession reports whether a live connection presented the session key.
func hasSession(t testing.TB, base, key string) bool {
	t.Helper()
	resp, err := httpc.Get(base + "/v1/connections")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Connections []struct{ Session string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Connections {
		if c.Session == key {
			return true
		}
	}
	return false
}
