package natsstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// TestBatchedAppends appends concurrently to one channel of one Store on a
// replicated stream, so that the channel's sender sends atomic batches: every append is stored
// once, each publisher's appends keep their order, the chain of
// predecessors has no gap (batch messages after the first say "="), and an
// idempotency key seen before is answered as a duplicate even when its
// append was queued with others.
func TestBatchedAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	srvs := clusterServers(t, 3)
	urls := make([]string, len(srvs))
	for i, srv := range srvs {
		urls[i] = srv.ClientURL()
	}
	s := openStore(t, strings.Join(urls, ","), Config{})
	ctx := t.Context()
	first, err := s.Append(ctx, "hot", []byte("first"), store.AppendOptions{IdempotencyKey: "seen"})
	if err != nil {
		t.Fatal(err)
	}
	const publishers, each = 32, 8
	total := 1
	// Rounds until the store has sent a batch; the first round almost
	// always does, the bound keeps the test finite.
	for round := 0; s.batches.Load() == 0; round++ {
		if round == 10 {
			t.Fatal("no append was sent in a batch in 10 rounds of 32 concurrent publishers")
		}
		var wg sync.WaitGroup
		errs := make(chan error, publishers)
		for p := range publishers {
			wg.Go(func() {
				var last uint64
				for i := range each {
					opts := store.AppendOptions{}
					if i%2 == 0 {
						opts.IdempotencyKey = fmt.Sprint(round, "/", p, "/", i)
					}
					if p == 0 && i == 0 {
						opts.IdempotencyKey = "seen"
					}
					res, err := s.Append(ctx, "hot", fmt.Append(nil, round, p, i), opts)
					if err != nil {
						errs <- err
						return
					}
					if opts.IdempotencyKey == "seen" {
						if !res.Duplicate || res.ID != first.ID {
							errs <- fmt.Errorf("append with a seen key = %+v; want the duplicate of %s", res, first.ID)
						}
						continue
					}
					seq, _ := parseCursor(res.ID)
					if res.Duplicate || seq <= last {
						errs <- fmt.Errorf("publisher %d append %d = %+v after %d; want a new, later message", p, i, res, last)
						return
					}
					last = seq
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		total += publishers*each - 1
	}
	r, err := s.Read(ctx, "hot", store.Start, 10_000)
	if err != nil || len(r.Messages) != total || r.Gap {
		t.Fatalf("Read = %d messages (gap %v), %v; want %d", len(r.Messages), r.Gap, err, total)
	}
	for _, m := range r.Messages[:len(r.Messages)-1] {
		if rr, err := s.Read(ctx, "hot", m.ID, 1); err != nil || rr.Gap || len(rr.Messages) != 1 {
			t.Fatalf("Read after %q = %+v, %v; want the next message, no gap", m.ID, rr, err)
		}
	}
}

// TestBatchLostAcknowledgement stores a batch whose acknowledgement is then
// "lost": the batch is sent again unchanged, the stream refuses it (its
// predecessor is taken), and the sender finds the batch by its first
// message's nonce: each append is answered with its message, once.
func TestBatchLostAcknowledgement(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := openStore(t, srv.ClientURL(), Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	before, err := s.Append(ctx, "lost", []byte("before"), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := parseCursor(before.ID)
	var ops []*appendOp
	for i := range 3 {
		a := &appendOp{ctx: ctx, channel: "lost", subject: channelSubject(s.prefix, "lost"),
			data: fmt.Append(nil, i), nonce: fmt.Sprint("test-nonce-", i), result: make(chan appendResult, 1)}
		if i == 1 {
			a.id = msgID("lost", "k")
		}
		ops = append(ops, a)
	}
	stamp(ops)
	last, err := s.publishBatch(ctx, ops, prev) // the try whose acknowledgement is "lost"
	if err != nil {
		t.Fatal(err)
	}
	s.resend(ctx, s.channelState("lost"), ops, prev, true)
	for i, a := range ops {
		r := <-a.result
		want := formatCursor(last - 2 + uint64(i))
		if r.err != nil || r.res.ID != want || r.res.Duplicate || !r.res.Time.Equal(a.now) {
			t.Fatalf("append %d after a lost acknowledgement = %+v, %v; want %s, not a duplicate", i, r.res, r.err, want)
		}
	}
	r, err := s.Read(ctx, "lost", before.ID, 10)
	if err != nil || len(r.Messages) != 3 || r.Gap {
		t.Fatalf("channel after the retry = %+v, %v; want three messages after %q", r, err, before.ID)
	}
}

// TestLandedOutcomes checks what a timed-out append learns about its try:
// nothing after its predecessor yet (it may still be stored: not yet), its
// own message (ours), or another's (its try can never be stored: theirs).
// Moving to a new predecessor on "not yet" would store the append twice
// once the try in flight lands.
func TestLandedOutcomes(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := openStore(t, srv.ClientURL(), Config{})
	ctx := t.Context()
	before, err := s.Append(ctx, "landed", []byte("before"), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := parseCursor(before.ID)
	a := &appendOp{channel: "landed", subject: channelSubject(s.prefix, "landed"), data: []byte("a"),
		nonce: "test-nonce-a", prev: prev, now: time.Now()}
	if _, o, err := s.landed(ctx, a); err != nil || o != landedNotYet {
		t.Fatalf("landed with nothing after prev = %v, %v; want not yet", o, err)
	}
	ack, err := s.publish(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if m, o, err := s.landed(ctx, a); err != nil || o != landedOurs || m.seq != ack.Sequence {
		t.Fatalf("landed after a's message = %d, %v, %v; want ours at %d", m.seq, o, err, ack.Sequence)
	}
	b := *a
	b.nonce = "test-nonce-b"
	if _, o, err := s.landed(ctx, &b); err != nil || o != landedTheirs {
		t.Fatalf("landed for b after a's message = %v, %v; want theirs", o, err)
	}
}
