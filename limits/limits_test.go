package limits

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func wantLimit(t *testing.T, what string, err error, code, limit string, status int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || e.Limit != limit || e.Status() != status {
		t.Errorf("%s: got %v, want %s/%s (%d)", what, err, code, limit, status)
	}
}

func TestConnectionLimits(t *testing.T) {
	l, err := New(Config{MaxConnections: 6, MaxConnectionsPerUser: 2, MaxConnectionsPerIP: 3})
	if err != nil {
		t.Fatal(err)
	}
	a1, err1 := l.Admit("alice", "10.0.0.1")
	a2, err2 := l.Admit("alice", "10.0.0.2")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	_, err = l.Admit("alice", "10.0.0.3")
	wantLimit(t, "alice's third", err, CodeTooManyConnections, LimitConnectionsPerUser, 429)

	b1, _ := l.Admit("bob", "10.0.0.9")
	b2, _ := l.Admit("", "10.0.0.9") // open mode: no user, still per IP
	_, err = l.Admit("", "10.0.0.9")
	if err != nil {
		t.Fatalf("third from 10.0.0.9: %v", err)
	}
	_, err = l.Admit("carol", "10.0.0.9")
	wantLimit(t, "fourth from one IP", err, CodeTooManyConnections, LimitConnectionsPerIP, 429)
	if _, err := l.Admit("dave", "10.0.0.7"); err != nil {
		t.Fatalf("sixth: %v", err)
	}
	if u := l.Usage(); u.Connections != 6 || u.Users != 3 || u.IPs != 4 {
		t.Fatalf("Usage = %+v, want 6 connections, 3 users, 4 IPs", u)
	}
	_, err = l.Admit("eve", "10.0.0.8")
	wantLimit(t, "past the total", err, CodeTooManyConnections, LimitConnections, 503)

	// Release gives back, once.
	a1.Release()
	a1.Release()
	if u := l.Usage(); u.Connections != 5 {
		t.Errorf("after a double release: %+v, want 5", u)
	}
	if _, err := l.Admit("alice", "10.0.0.4"); err != nil {
		t.Errorf("alice after a release: %v", err)
	}
	a2.Release()
	b1.Release()
	b2.Release()
}

func TestSubscriptionLimits(t *testing.T) {
	l, _ := New(Config{MaxSubscriptionsPerConnection: 2, MaxSubscriptions: 3})
	a, _ := l.Admit("a", "1.1.1.1")
	b, _ := l.Admit("b", "1.1.1.2")
	if err := errors.Join(a.Subscribe(), a.Subscribe()); err != nil {
		t.Fatal(err)
	}
	wantLimit(t, "third on one connection", a.Subscribe(), CodeTooManySubscriptions, LimitSubscriptionsPerConnection, 429)
	if err := b.Subscribe(); err != nil {
		t.Fatal(err)
	}
	wantLimit(t, "past the total", b.Subscribe(), CodeTooManySubscriptions, LimitSubscriptions, 503)
	a.Unsubscribe()
	if err := b.Subscribe(); err != nil {
		t.Errorf("after an unsubscribe: %v", err)
	}
	// Releasing a connection gives back its subscriptions.
	b.Release()
	if u := l.Usage(); u.Subscriptions != 1 || u.Connections != 1 {
		t.Errorf("after release: %+v, want 1 subscription, 1 connection", u)
	}
	if err := b.Subscribe(); !errors.Is(err, ErrReleased) {
		t.Errorf("Subscribe after Release: %v", err)
	}
	b.Unsubscribe() // ignored
	a.Unsubscribe()
	a.Unsubscribe() // extra: ignored
	if u := l.Usage(); u.Subscriptions != 0 {
		t.Errorf("Usage %+v, want 0 subscriptions", u)
	}
}

func TestNoLimits(t *testing.T) {
	l, _ := New(Config{MaxConnections: -1, MaxConnectionsPerUser: -1, MaxConnectionsPerIP: -1,
		MaxSubscriptionsPerConnection: -1, MaxSubscriptions: -1, PublishRate: -1})
	for range 3 * DefaultMaxConnectionsPerUser {
		s, err := l.Admit("u", "1.1.1.1")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe(); err != nil {
			t.Fatal(err)
		}
		if err := l.AllowPublish("u"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPublishRate(t *testing.T) {
	c := newClock()
	l, _ := New(Config{PublishRate: 2, PublishBurst: 2, Now: c.now})
	if err := errors.Join(l.AllowPublish("u"), l.AllowPublish("u")); err != nil {
		t.Fatal(err)
	}
	err := l.AllowPublish("u")
	wantLimit(t, "third publish", err, CodeRateLimited, LimitPublishRate, 429)
	var e *Error
	errors.As(err, &e)
	if e.RetryAfter != 500*time.Millisecond || e.RetryAfterHeader() != "1" {
		t.Errorf("RetryAfter %v (header %q), want 500ms (\"1\")", e.RetryAfter, e.RetryAfterHeader())
	}
	for range 1000 {
		if err := l.AllowPublish(""); err != nil {
			t.Fatal("open mode (no user) rate limited")
		}
	}
	c.advance(500 * time.Millisecond)
	if err := l.AllowPublish("u"); err != nil {
		t.Errorf("after Retry-After: %v", err)
	}
	long := &Error{Code: CodeRateLimited, RetryAfter: 2001 * time.Millisecond}
	if long.RetryAfterHeader() != "3" {
		t.Errorf("RetryAfterHeader(2.001s) = %q, want 3", long.RetryAfterHeader())
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := New(Config{MaxConnectionsPerUser: 1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := l.Admit("u", "1.1.1.1")
	s.Subscribe()
	l.Admit("u", "1.1.1.2") // refused
	l.AllowPublish("u")
	got := gather(t, reg)
	want := map[string]float64{
		"tether_limit_connections":   1,
		"tether_limit_subscriptions": 1,
		"tether_limit_users":         1,
		"tether_limit_ips":           1,
		"tether_limit_rate_buckets":  1,
		`tether_limit_refusals_total{limit="connections_per_user"}`: 1,
		`tether_limit_refusals_total{limit="publish_rate"}`:         0,
		`tether_limit_max{limit="connections_per_user"}`:            1,
		`tether_limit_max{limit="connections"}`:                     DefaultMaxConnections,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, err := New(Config{Registerer: reg}); err == nil {
		t.Error("a second Limits on one registry: no error")
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			name := mf.GetName()
			for _, lp := range m.Label {
				name += fmt.Sprintf(`{%s=%q}`, lp.GetName(), lp.GetValue())
			}
			switch {
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			}
		}
	}
	return out
}

// TestConcurrentAdmitRelease checks the counters under -race and that
// per-user and per-IP maps empty out (bounded memory).
func TestConcurrentAdmitRelease(t *testing.T) {
	l, _ := New(Config{})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				s, err := l.Admit(fmt.Sprint("u", g), fmt.Sprint("10.0.", g, ".", i%7))
				if err != nil {
					t.Error(err)
					return
				}
				s.Subscribe()
				l.AllowPublish(fmt.Sprint("u", g))
				s.Release()
			}
		})
	}
	wg.Wait()
	if u := l.Usage(); u.Connections != 0 || u.Subscriptions != 0 || u.Users != 0 || u.IPs != 0 {
		t.Errorf("Usage after everything ended: %+v, want zeros", u)
	}
}

func TestIPKey(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1:5555":             "192.0.2.1",
		"192.0.2.1":                  "192.0.2.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:1":           "fe80::/64",
		"not an address":             "not an address",
	}
	for in, want := range cases {
		if got := IPKey(in); got != want {
			t.Errorf("IPKey(%q) = %q, want %q", in, got, want)
		}
	}
}
