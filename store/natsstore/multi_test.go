package natsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// wakeBound is how long a Wait may take to notice an append made through
// another Store; generous for a loaded machine under the race detector.
const wakeBound = 5 * time.Second

// TestTwoStoresOneStream checks that two Stores on one stream, each with
// its own connection, see each other's appends: in Read and Bounds at once
// (the leader answers Latest), and in a blocked Wait through the watch.
func TestTwoStoresOneStream(t *testing.T) {
	srv := startServer(t, t.TempDir())
	a := openStore(t, srv.ClientURL(), Config{})
	b := openStore(t, srv.ClientURL(), Config{})
	ctx := t.Context()

	first, err := a.Append(ctx, "shared.ch", []byte("from a"), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Read(ctx, "shared.ch", store.Start, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Messages) != 1 || r.Messages[0].ID != first.ID || string(r.Messages[0].Data) != "from a" {
		t.Fatalf("Read on b = %+v; want a's message %q", r, first.ID)
	}

	// b waits after the latest; a appends; b wakes.
	waitCtx, cancel := context.WithTimeout(ctx, 3*wakeBound)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- b.Wait(waitCtx, "shared.ch", first.ID) }()
	second, err := a.Append(ctx, "shared.ch", []byte("again from a"), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("Wait on b: %v", err)
		}
	case <-time.After(wakeBound):
		t.Fatalf("Wait on b did not wake within %v of an append on a", wakeBound)
	}
	if bd, err := b.Bounds(ctx, "shared.ch"); err != nil || bd.Latest != second.ID || bd.Earliest != first.ID {
		t.Fatalf("Bounds on b = %+v, %v; want Earliest %q, Latest %q", bd, err, first.ID, second.ID)
	}

	// Appends interleaved from both stores form one chain: no gap, each
	// store's own order kept.
	var want []store.Cursor
	for i := range 10 {
		s := a
		if i%2 == 1 {
			s = b
		}
		res, err := s.Append(ctx, "shared.ch", fmt.Appendf(nil, "m%d", i), store.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.ID)
	}
	r, err = a.Read(ctx, "shared.ch", second.ID, 100)
	if err != nil || r.Gap || len(r.Messages) != len(want) {
		t.Fatalf("Read on a after interleaved appends = %+v, %v; want %d messages, no gap", r, err, len(want))
	}
	for i, m := range r.Messages {
		if m.ID != want[i] {
			t.Fatalf("message %d = %q; want %q", i, m.ID, want[i])
		}
	}
}

// TestConcurrentAppendsAcrossStores races unconditional appends to one
// channel from two Stores: each append loses the channel's next position
// to the other store now and then and must retry, never append twice,
// never break the chain.
func TestConcurrentAppendsAcrossStores(t *testing.T) {
	const perStore, publishers = 40, 4
	srv := startServer(t, t.TempDir())
	stores := []*Store{openStore(t, srv.ClientURL(), Config{}), openStore(t, srv.ClientURL(), Config{})}
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*publishers)
	for si, s := range stores {
		for p := range publishers {
			wg.Go(func() {
				for i := range perStore / publishers {
					if _, err := s.Append(t.Context(), "busy", fmt.Appendf(nil, "%d/%d/%d", si, p, i), store.AppendOptions{}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r, err := stores[0].Read(t.Context(), "busy", store.Start, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Messages) != 2*perStore {
		t.Fatalf("channel holds %d messages; want %d", len(r.Messages), 2*perStore)
	}
	// Reading after every message gives no gap: the chain is whole.
	for _, m := range r.Messages[:len(r.Messages)-1] {
		if rr, err := stores[1].Read(t.Context(), "busy", m.ID, 1); err != nil || rr.Gap {
			t.Fatalf("Read after %q = %+v, %v; want no gap", m.ID, rr, err)
		}
	}
}

// TestExpectLatestRaceAcrossStores races conditional appends that expect
// the same cursor from two Stores on one server, round after round, the
// way two tether nodes race to claim a job: exactly one wins each round.
func TestExpectLatestRaceAcrossStores(t *testing.T) {
	const perStore, rounds = 4, 15
	srv := startServer(t, t.TempDir())
	stores := []*Store{openStore(t, srv.ClientURL(), Config{}), openStore(t, srv.ClientURL(), Config{})}
	raceRounds(t, stores, perStore, rounds)
}

// raceRounds runs the ExpectLatest race over stores and checks the log is
// the chain of winners.
func raceRounds(t *testing.T, stores []*Store, perStore, rounds int) {
	t.Helper()
	latest := store.Start
	var winners []store.Cursor
	for round := range rounds {
		start := make(chan struct{})
		type result struct {
			res store.AppendResult
			err error
		}
		results := make(chan result, len(stores)*perStore)
		var wg sync.WaitGroup
		for si, s := range stores {
			for w := range perStore {
				wg.Go(func() {
					<-start
					r, err := s.Append(t.Context(), "claim", fmt.Appendf(nil, "r%d-s%d-w%d", round, si, w),
						store.AppendOptions{ExpectLatest: latest})
					results <- result{r, err}
				})
			}
		}
		close(start)
		wg.Wait()
		close(results)
		var won []store.AppendResult
		for r := range results {
			switch {
			case r.err == nil:
				won = append(won, r.res)
			case !errors.Is(r.err, store.ErrConflict):
				t.Fatalf("round %d: %v; want nil or ErrConflict", round, r.err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d appends expecting %q succeeded; want exactly 1", round, len(won), latest)
		}
		latest = won[0].ID
		winners = append(winners, latest)
	}
	r, err := stores[len(stores)-1].Read(t.Context(), "claim", store.Start, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Messages) != len(winners) {
		t.Fatalf("channel holds %d messages; want the %d winners", len(r.Messages), len(winners))
	}
	for i, m := range r.Messages {
		if m.ID != winners[i] {
			t.Fatalf("message %d = %q; want winner %q", i, m.ID, winners[i])
		}
	}
}

// TestDuplicateBeforeConflictAcrossStores retries, on another Store, a
// conditional append whose expectation no longer holds: the idempotency
// key answers it as a duplicate, as the seam requires, although a single
// nats-server checks the expectation first.
func TestDuplicateBeforeConflictAcrossStores(t *testing.T) {
	srv := startServer(t, t.TempDir())
	a := openStore(t, srv.ClientURL(), Config{})
	b := openStore(t, srv.ClientURL(), Config{})
	ctx := t.Context()
	opts := store.AppendOptions{IdempotencyKey: "claim-1", ExpectLatest: store.Start}
	first, err := a.Append(ctx, "job", []byte("claim"), opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Append(ctx, "job", []byte("claim"), opts)
	if err != nil || !again.Duplicate || again.ID != first.ID || !again.Time.Equal(first.Time) {
		t.Fatalf("retry on b = %+v, %v; want the duplicate of %+v", again, err, first)
	}
	// Another key with the stale expectation is a conflict, and the probe
	// that found it so stored nothing.
	if _, err := b.Append(ctx, "job", []byte("other"), store.AppendOptions{IdempotencyKey: "claim-2", ExpectLatest: store.Start}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conditional append with a new key and a stale expectation: %v; want ErrConflict", err)
	}
	if r, err := a.Read(ctx, "job", store.Start, 10); err != nil || len(r.Messages) != 1 {
		t.Fatalf("channel = %+v, %v; want the one claim", r, err)
	}
	// The refused key was not consumed.
	if r, err := b.Append(ctx, "job", []byte("other"), store.AppendOptions{IdempotencyKey: "claim-2", ExpectLatest: first.ID}); err != nil || r.Duplicate {
		t.Fatalf("append with the refused key = %+v, %v; want a new message", r, err)
	}
}

// TestChannelSubjects checks the channel-to-subject mapping on names that
// a naive one would break or merge.
func TestChannelSubjects(t *testing.T) {
	for _, tc := range []struct{ channel, subject string }{
		{"news", "T.c.news"},
		{"a.b", "T.c.a~b"},
		{"a..b", "T.c.a~~b"},
		{"a.", "T.c.a~"},
		{"x:y-z_w", "T.c.x:y-z_w"},
	} {
		if got := channelSubject("T.c.", tc.channel); got != tc.subject {
			t.Errorf("channelSubject(%q) = %q; want %q", tc.channel, got, tc.subject)
		}
		if got, ok := subjectChannel("T.c.", tc.subject); !ok || got != tc.channel {
			t.Errorf("subjectChannel(%q) = %q, %v; want %q", tc.subject, got, ok, tc.channel)
		}
	}
	for _, subject := range []string{"T.c.", "T.c.a.b", "T.x.a", "T.c.-a", "U.c.a"} {
		if ch, ok := subjectChannel("T.c.", subject); ok {
			t.Errorf("subjectChannel(%q) = %q; want not a channel", subject, ch)
		}
	}
}

// TestLostAcknowledgement replays what an append does when a try times out
// although the stream stored the message: the try is sent again unchanged,
// the stream refuses it (its predecessor is taken), and the append finds
// its own message by its nonce. The result is that message, once, not a
// duplicate, with or without an idempotency key.
func TestLostAcknowledgement(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := openStore(t, srv.ClientURL(), Config{})
	ctx := t.Context()
	for _, key := range []string{"", "k"} {
		ch := "lost-" + key + "x"
		before, err := s.Append(ctx, ch, []byte("before"), store.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		prev, _ := parseCursor(before.ID)
		a := &appendOp{channel: ch, subject: channelSubject(s.prefix, ch), data: []byte("once"),
			nonce: "test-nonce-" + key, prev: prev, now: time.Now()}
		if key != "" {
			a.id = msgID(ch, key)
		}
		stored, err := s.publish(ctx, a) // the try whose acknowledgement is "lost"
		if err != nil {
			t.Fatal(err)
		}
		a.unsure = true
		res, err := s.send(ctx, a, false)
		if err != nil {
			t.Fatalf("key %q: retry after a lost acknowledgement: %v", key, err)
		}
		if res.ID != formatCursor(stored.Sequence) || res.Duplicate || !res.Time.Equal(a.now) {
			t.Fatalf("key %q: retry = %+v; want the stored message %d, not a duplicate, Time %v", key, res, stored.Sequence, a.now)
		}
		r, err := s.Read(ctx, ch, before.ID, 10)
		if err != nil || len(r.Messages) != 1 {
			t.Fatalf("key %q: channel after the retry = %+v, %v; want one message after %q", key, r, err, before.ID)
		}
	}
}
