package natsstore

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tether-run/tether/store"
)

// TestCombinedAppends appends concurrently to 16 channels, one publisher
// each, through one Store on a replicated stream, while a second Store
// appends to four of the same channels (its appends make the combined
// batches that name those channels' old predecessors fail whole, and
// their groups go out alone), with idempotency keys seen before in the
// mix: batches of several channels are stored, every append is stored
// once, each channel's chain has no gap, and a seen key is answered as a
// duplicate.
func TestCombinedAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	srvs := clusterServers(t, 3)
	urls := make([]string, len(srvs))
	for i, srv := range srvs {
		urls[i] = srv.ClientURL()
	}
	s := openStore(t, strings.Join(urls, ","), Config{})
	other := openStore(t, strings.Join([]string{urls[2], urls[0], urls[1]}, ","), Config{})
	ctx := t.Context()
	const channels, each = 16, 12
	seen := make([]store.AppendResult, channels)
	for c := range channels {
		r, err := s.Append(ctx, fmt.Sprint("ch", c), []byte("seen"), store.AppendOptions{IdempotencyKey: "seen"})
		if err != nil {
			t.Fatal(err)
		}
		seen[c] = r
	}
	want := make([]int, channels) // messages per channel
	for c := range want {
		want[c] = 1
	}
	for round := 0; s.combined.Load() == 0 || round < 2; round++ {
		if round == 10 {
			t.Fatal("no combined batch in 10 rounds of 16 channels")
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*channels)
		for c := range channels {
			ch := fmt.Sprint("ch", c)
			wg.Go(func() {
				var last uint64
				for i := range each {
					opts := store.AppendOptions{IdempotencyKey: fmt.Sprint(round, "/", i)}
					if i == each/2 {
						opts.IdempotencyKey = "seen"
					}
					res, err := s.Append(ctx, ch, fmt.Append(nil, round, i), opts)
					if err != nil {
						errs <- err
						return
					}
					if opts.IdempotencyKey == "seen" {
						if !res.Duplicate || res.ID != seen[c].ID {
							errs <- fmt.Errorf("%s: append with a seen key = %+v; want the duplicate of %s", ch, res, seen[c].ID)
						}
						continue
					}
					seq, _ := parseCursor(res.ID)
					if res.Duplicate || seq <= last {
						errs <- fmt.Errorf("%s append %d = %+v after %d; want a new, later message", ch, i, res, last)
						return
					}
					last = seq
				}
			})
			if c%4 == 0 {
				wg.Go(func() {
					for i := range each / 2 {
						if _, err := other.Append(ctx, ch, fmt.Append(nil, "other", round, i), store.AppendOptions{}); err != nil {
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
		for c := range want {
			want[c] += each - 1
			if c%4 == 0 {
				want[c] += each / 2
			}
		}
	}
	for c := range channels {
		ch := fmt.Sprint("ch", c)
		r, err := s.Read(ctx, ch, store.Start, 10_000)
		if err != nil || len(r.Messages) != want[c] || r.Gap {
			t.Fatalf("Read(%s) = %d messages (gap %v), %v; want %d", ch, len(r.Messages), r.Gap, err, want[c])
		}
		for _, m := range r.Messages[:len(r.Messages)-1] {
			if rr, err := other.Read(ctx, ch, m.ID, 1); err != nil || rr.Gap || len(rr.Messages) != 1 {
				t.Fatalf("Read(%s) after %q = %+v, %v; want the next message, no gap", ch, m.ID, rr, err)
			}
		}
	}
	t.Logf("combined batches stored: %d", s.combined.Load())
}
