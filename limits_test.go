package tether_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/auth"
)

// Each limit, flooded: the refusal is the documented answer, it is
// counted, and the server goes on answering.
func TestLimitsFlood(t *testing.T) {
	perm := auth.Permissions{Subscribe: []string{">"}, Publish: []string{">"}}
	responsive := func(t *testing.T, n *node) {
		t.Helper()
		if status, _, body, _ := httpDo(t, "GET", n.base+"/healthz", "", ""); status != 200 {
			t.Fatalf("healthz after the flood: %d %s", status, body)
		}
	}
	refusals := func(n *node, limit string) float64 {
		return n.metric("tether_limit_refusals_total", map[string]string{"limit": limit})
	}

	t.Run("connections", func(t *testing.T) {
		n := startSecure(t, func(c *tether.Config) { c.Limits.MaxConnections = 3 })
		var open []*framed
		for i := range 3 {
			f := dialWS(t, n, sign(t, nil, fmt.Sprint("u", i), time.Hour, perm))
			if code := f.request(map[string]any{"type": "ping", "id": "1"}); code != "" {
				t.Fatal(code)
			}
			open = append(open, f)
		}
		for range 5 {
			if code := dialTCP(t, n, sign(t, nil, "late", time.Hour, perm)).request(map[string]any{"type": "ping", "id": "1"}); code != "too_many_connections" {
				t.Fatalf("tcp past the limit: %q", code)
			}
			if code := dialWS(t, n, sign(t, nil, "late", time.Hour, perm)).request(map[string]any{"type": "ping", "id": "1"}); code != "too_many_connections" {
				t.Fatalf("websocket past the limit: %q", code)
			}
			status, code, body, _ := httpDo(t, "GET", n.base+"/v1/channels/a/messages?wait=0", sign(t, nil, "late", time.Hour, perm), "")
			if status != http.StatusServiceUnavailable || code != "too_many_connections" {
				t.Fatalf("long-poll past the limit: %d %s", status, body)
			}
		}
		if refusals(n, "connections") < 15 {
			t.Fatalf("refusals counted: %v", refusals(n, "connections"))
		}
		responsive(t, n)
		open[0].stop()
		eventually(t, 5*time.Second, "a place is free again", func() bool {
			status, _, _, _ := httpDo(t, "GET", n.base+"/v1/channels/a/messages?wait=0", sign(t, nil, "late", time.Hour, perm), "")
			return status == 200
		})
	})

	t.Run("per user and per IP", func(t *testing.T) {
		n := startSecure(t, func(c *tether.Config) {
			c.Limits.MaxConnectionsPerUser = 2
			c.Limits.MaxConnectionsPerIP = 4
		})
		alice := sign(t, nil, "alice", time.Hour, perm)
		for range 2 {
			if code := dialTCP(t, n, alice).request(map[string]any{"type": "ping", "id": "1"}); code != "" {
				t.Fatal(code)
			}
		}
		if code := dialWS(t, n, alice).request(map[string]any{"type": "ping", "id": "1"}); code != "too_many_connections" {
			t.Fatalf("alice's third: %q", code)
		}
		status, code, _, h := httpDo(t, "GET", n.base+"/v1/channels/a/messages?wait=0", alice, "")
		if status != http.StatusTooManyRequests || code != "too_many_connections" {
			t.Fatalf("alice's long-poll: %d %s %v", status, code, h)
		}
		for range 2 { // bob fills the address's 4
			if code := dialTCP(t, n, sign(t, nil, "bob", time.Hour, perm)).request(map[string]any{"type": "ping", "id": "1"}); code != "" {
				t.Fatal(code)
			}
		}
		if code := dialTCP(t, n, sign(t, nil, "carol", time.Hour, perm)).request(map[string]any{"type": "ping", "id": "1"}); code != "too_many_connections" {
			t.Fatalf("fifth from one address: %q", code)
		}
		if refusals(n, "connections_per_user") < 2 || refusals(n, "connections_per_ip") < 1 {
			t.Fatal("refusals not counted")
		}
		responsive(t, n)
	})

	t.Run("subscriptions", func(t *testing.T) {
		n := startSecure(t, func(c *tether.Config) { c.Limits.MaxSubscriptions = 3 })
		f := dialWS(t, n, sign(t, nil, "alice", time.Hour, perm))
		for i := range 3 {
			if code := f.request(map[string]any{"type": "subscribe", "id": fmt.Sprint(i), "channel": fmt.Sprint("c", i)}); code != "" {
				t.Fatal(code)
			}
		}
		g := dialTCP(t, n, sign(t, nil, "bob", time.Hour, perm))
		for i := range 10 {
			if code := g.request(map[string]any{"type": "subscribe", "id": fmt.Sprint(i), "channel": fmt.Sprint("d", i)}); code != "too_many_subscriptions" {
				t.Fatalf("subscription past the total: %q", code)
			}
		}
		if refusals(n, "subscriptions") < 10 {
			t.Fatal("refusals not counted")
		}
		// An unsubscribe frees a place.
		if code := f.request(map[string]any{"type": "unsubscribe", "id": "u", "channel": "c0"}); code != "" {
			t.Fatal(code)
		}
		if code := g.request(map[string]any{"type": "subscribe", "id": "x", "channel": "d0"}); code != "" {
			t.Fatalf("after an unsubscribe: %q", code)
		}
		responsive(t, n)
	})

	t.Run("publish rate", func(t *testing.T) {
		n := startSecure(t, func(c *tether.Config) {
			c.Limits.PublishRate = 1
			c.Limits.PublishBurst = 3
		})
		alice := sign(t, nil, "alice", time.Hour, perm)
		var created, limited int
		for range 20 {
			status, code, body, h := httpDo(t, "POST", n.base+"/v1/channels/a/messages", alice, `1`)
			switch {
			case status == http.StatusCreated:
				created++
			case status == http.StatusTooManyRequests && code == "rate_limited":
				limited++
				if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 {
					t.Fatalf("Retry-After %q", h.Get("Retry-After"))
				}
			default:
				t.Fatalf("publish: %d %s", status, body)
			}
		}
		if created < 3 || created > 4 || limited != 20-created {
			t.Fatalf("created %d, limited %d", created, limited)
		}
		// The same bucket over WebSocket: rate_limited with retry_after_ms.
		f := dialWS(t, n, alice)
		f.send(map[string]any{"type": "publish", "id": "p", "channel": "a", "data": 1})
		m := f.next()
		if m["code"] != "rate_limited" || m["retry_after_ms"] == nil {
			t.Fatalf("websocket publish: %v", m)
		}
		// Another user has a bucket of its own.
		if status, _, body, _ := httpDo(t, "POST", n.base+"/v1/channels/a/messages", sign(t, nil, "bob", time.Hour, perm), `1`); status != 201 {
			t.Fatalf("bob: %d %s", status, body)
		}
		responsive(t, n)
	})
}
