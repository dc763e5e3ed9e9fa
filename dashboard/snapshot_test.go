package dashboard

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
)

// countAfter counts what was appended between two cursors, up to
// rateReadCap, and says when there were more.
func TestCountAfter(t *testing.T) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	appendN := func(n int) store.Cursor {
		var last store.Cursor
		for i := range n {
			res, err := st.Append(ctx, "c", fmt.Appendf(nil, "%d", i), store.AppendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			last = res.ID
		}
		return last
	}
	tests := []struct {
		name    string
		appends int
		want    int
		atLeast bool
	}{
		{"none", 0, 0, false},
		{"a few", 5, 5, false},
		{"exactly the cap less one", rateReadCap - 1, rateReadCap - 1, false},
		{"more than the cap", rateReadCap + 10, rateReadCap, true},
	}
	prev := store.Start
	for _, tt := range tests {
		latest := prev
		if tt.appends > 0 {
			latest = appendN(tt.appends)
		}
		n, atLeast, ok := countAfter(ctx, st, "c", prev, latest)
		if !ok || n != tt.want || atLeast != tt.atLeast {
			t.Errorf("%s: countAfter = %d, %v, %v; want %d, %v, true", tt.name, n, atLeast, ok, tt.want, tt.atLeast)
		}
		prev = latest
	}
	if _, _, ok := countAfter(ctx, st, "c", "not-a-cursor", prev); ok {
		t.Error("countAfter after a bad cursor: ok")
	}
}

// One snapshot is reused for half an interval, however many ask; then a
// new one is built.
func TestBuilderReuses(t *testing.T) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := session.New(session.Config{}, st, reg, nil, session.Access{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Interval: 10 * time.Second}, core, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := d.b.get(), d.b.get()
	if &a[0] != &b[0] {
		t.Error("two asks within half an interval built two snapshots")
	}
	d.b.mu.Lock()
	d.b.lastAt = d.b.lastAt.Add(-5 * time.Second) // half an interval ago
	d.b.mu.Unlock()
	c := d.b.get()
	if &c[0] == &a[0] {
		t.Error("a snapshot half an interval old was reused")
	}
	var s Snapshot
	if err := json.Unmarshal(c, &s); err != nil || !s.Open || s.Connections.Total != 0 || s.Jobs != nil {
		t.Errorf("snapshot %s: %v; want open, empty, no jobs section", c, err)
	}
}
