package natsstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// TestIdleChannelsEvicted: a store that appended to 200 channels forgets
// them once they are idle, but not a channel a Wait holds; a forgotten
// channel's next append learns its predecessor from the stream (the chain
// has no gap), and a Wait on it wakes.
func TestIdleChannelsEvicted(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := openStore(t, srv.ClientURL(), Config{ChannelIdle: 50 * time.Millisecond})
	ctx := t.Context()
	const n = 200
	ids := make([]store.AppendResult, n)
	for i := range n {
		r, err := s.Append(ctx, fmt.Sprint("c", i), []byte("first"), store.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r
	}
	// A Wait on c0 after its newest message holds c0's entry.
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- s.Wait(waitCtx, "c0", store.Cursor(ids[0].ID)) }()
	waitFor(t, 10*time.Second, "only the waited channel left in memory", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, held := s.chans["c0"]
		return held && len(s.chans) == 1 && s.chans["c0"].waiters == 1
	})

	// c1 was forgotten: its next append names a stale predecessor, is
	// refused, and follows the first message.
	r, err := s.Append(ctx, "c1", []byte("second"), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.Read(ctx, "c1", store.Cursor(ids[1].ID), 10)
	if err != nil || page.Gap || len(page.Messages) != 1 || page.Messages[0].ID != store.Cursor(r.ID) {
		t.Fatalf("Read after the first message of a forgotten channel = %+v, %v; want the second, no gap", page, err)
	}
	if _, err := s.Append(ctx, "c0", []byte("wake"), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("Wait on the held channel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Wait on c0 did not wake")
	}
	waitFor(t, 10*time.Second, "every channel forgotten", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.chans) == 0 && s.sweep == nil
	})
}
