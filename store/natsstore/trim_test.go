package natsstore

import (
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

// TestTrimKeepsNewest checks the MaxAge trimmer: it deletes expired
// messages from the stream itself, but keeps each channel's newest, which
// holds the channel's Latest and the next append's predecessor.
func TestTrimKeepsNewest(t *testing.T) {
	const maxAge = time.Second
	srv := startServer(t, t.TempDir())
	s := openStore(t, srv.ClientURL(), Config{Retention: store.Retention{MaxAge: maxAge}})
	ctx := t.Context()
	var last store.AppendResult
	for _, ch := range []string{"a", "a", "a", "b"} {
		r, err := s.Append(ctx, ch, []byte(ch), store.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ch == "a" {
			last = r
		}
	}
	// Once everything has expired, the stream holds only the two newest
	// messages, a's last and b's, and a still knows its Latest.
	waitFor(t, maxAge+10*time.Second, "everything expired and trimmed but the newest of each channel", func() bool {
		b, err := s.Bounds(ctx, "a")
		if err != nil || b.Earliest != "" {
			return false
		}
		info, err := s.stream.Info(ctx)
		return err == nil && info.State.Msgs == 2
	})
	b, err := s.Bounds(ctx, "a")
	if err != nil || b.Latest != last.ID || b.Earliest != "" {
		t.Fatalf("Bounds(a) after trimming = %+v, %v; want Latest %q, no Earliest", b, err, last.ID)
	}
	// The chain goes on from the kept message: no gap after it, and a
	// conditional append on it succeeds.
	next, err := s.Append(ctx, "a", []byte("next"), store.AppendOptions{ExpectLatest: last.ID})
	if err != nil {
		t.Fatalf("Append expecting the trimmed channel's Latest: %v", err)
	}
	r, err := s.Read(ctx, "a", last.ID, 10)
	if err != nil || r.Gap || len(r.Messages) != 1 || r.Messages[0].ID != next.ID {
		t.Fatalf("Read after the kept message = %+v, %v; want [%q], no gap", r, err, next.ID)
	}
}
