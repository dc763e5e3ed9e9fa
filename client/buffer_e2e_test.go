package client

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// A message published before its handler exists is held and delivered,
// in order, when the handler registers.
func TestUnhandledReplay(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	c := dial(t, srv.ws(), Config{})
	if _, err := c.Subscribe(ctx, "late", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Publish(ctx, "late", i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "3 events held", func() bool { return c.Stats().Held == 3 })
	rec := newRecorder()
	c.Handle("late", rec.handle)
	got := rec.waitN(t, 10*time.Second, EventMessage, 3)
	for i, ev := range got {
		if string(ev.Data) != strconv.Itoa(i) {
			t.Fatalf("event %d = %s, want %d", i, ev.Data, i)
		}
	}
	if _, err := c.Publish(ctx, "late", 3); err != nil {
		t.Fatal(err)
	}
	got = rec.waitN(t, 10*time.Second, EventMessage, 4)
	if string(got[3].Data) != "3" || len(rec.snapshot()) != 4 {
		t.Fatalf("events %+v, want 4 messages 0..3", rec.snapshot())
	}
	if s := c.Stats(); s.Held != 0 || s.DroppedOverflow+s.DroppedExpired != 0 {
		t.Fatalf("stats %+v: want nothing held or dropped", s)
	}
}

// dropLog collects OnDropped reports.
type dropLog struct {
	mu   sync.Mutex
	all  []Dropped
	grew chan struct{}
}

func (d *dropLog) on(x Dropped) {
	d.mu.Lock()
	d.all = append(d.all, x)
	close(d.grew)
	d.grew = make(chan struct{})
	d.mu.Unlock()
}

// wait waits until reports of reason for channel add up to n messages.
func (d *dropLog) wait(t testing.TB, within time.Duration, channel, reason string, n int) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		sum := 0
		for _, x := range d.all {
			if x.Channel == channel && x.Reason == reason {
				sum += x.Messages
			}
		}
		grew := d.grew
		d.mu.Unlock()
		if sum == n {
			return
		}
		if sum > n {
			t.Fatalf("%d %s drops of %s reported, want %d", sum, reason, channel, n)
		}
		select {
		case <-grew:
		case <-deadline.C:
			t.Fatalf("%d %s drops of %s reported within %v, want %d", sum, reason, channel, within, n)
		}
	}
}

func TestUnhandledOverflowAndTTL(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	t.Run("overflow", func(t *testing.T) {
		drops := &dropLog{grew: make(chan struct{})}
		c := dial(t, srv.ws(), Config{BufferMaxMessages: 5, BufferTTL: time.Hour, OnDropped: drops.on})
		if _, err := c.Subscribe(ctx, "of", SubscribeOptions{After: "0"}); err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			if _, err := c.Publish(ctx, "of", i); err != nil {
				t.Fatal(err)
			}
		}
		drops.wait(t, 10*time.Second, "of", DropOverflow, 3)
		waitFor(t, 10*time.Second, "5 held", func() bool { return c.Stats().Held == 5 })
		if s := c.Stats(); s.DroppedOverflow != 3 {
			t.Fatalf("Stats().DroppedOverflow = %d, want 3", s.DroppedOverflow)
		}
		rec := newRecorder()
		c.Handle("of", rec.handle)
		rec.waitN(t, 10*time.Second, EventMessage, 5)
		got := rec.snapshot()
		if len(got) != 6 || got[0].Kind != EventDropped || got[0].Dropped != 3 || got[0].DropReason != DropOverflow {
			t.Fatalf("events %+v: want a dropped(3, overflow) then 5 messages", got)
		}
		for i, ev := range got[1:] {
			if string(ev.Data) != strconv.Itoa(i+3) {
				t.Fatalf("message %d = %s, want %d", i, ev.Data, i+3)
			}
		}
	})
	t.Run("ttl", func(t *testing.T) {
		drops := &dropLog{grew: make(chan struct{})}
		c := dial(t, srv.ws(), Config{BufferTTL: 200 * time.Millisecond, OnDropped: drops.on})
		if _, err := c.Subscribe(ctx, "ttl", SubscribeOptions{After: "0"}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if _, err := c.Publish(ctx, "ttl", i); err != nil {
				t.Fatal(err)
			}
		}
		drops.wait(t, 10*time.Second, "ttl", DropExpired, 2)
		if s := c.Stats(); s.Held != 0 || s.DroppedExpired != 2 {
			t.Fatalf("stats %+v: want 0 held, 2 expired", s)
		}
		rec := newRecorder()
		c.Handle("ttl", rec.handle)
		rec.waitN(t, 10*time.Second, EventDropped, 1)
		if _, err := c.Publish(ctx, "ttl", 2); err != nil {
			t.Fatal(err)
		}
		rec.waitN(t, 10*time.Second, EventMessage, 1)
		got := rec.snapshot()
		if len(got) != 2 || got[0].Dropped != 2 || got[0].DropReason != DropExpired || string(got[1].Data) != "2" {
			t.Fatalf("events %+v: want dropped(2, expired), then message 2", got)
		}
	})
}
