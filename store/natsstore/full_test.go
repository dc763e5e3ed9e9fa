package natsstore

import (
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/tether-run/tether/internal/tmpfstest"
	"github.com/tether-run/tether/store"
)

// TestFullStreamRefusesAppends fills a server whose JetStream may keep
// only 256 KiB: once it is full, appends must answer store.ErrNoSpace at
// once (no retries until the deadline), Health must say so, reads must go
// on, and every acknowledged message must be there.
func TestFullStreamRefusesAppends(t *testing.T) {
	srv := newServer(t, &server.Options{
		ServerName:        "small",
		StoreDir:          filepath.Join(t.TempDir(), "jetstream"),
		JetStreamMaxStore: 256 << 10,
	})
	t.Cleanup(func() { shutdown(srv) })
	s := openStore(t, srv.ClientURL(), Config{})
	data := make([]byte, 4<<10)
	acked := 0
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("1000 appends of 4 KiB into 256 KiB all succeeded")
		}
		start := time.Now()
		_, err := s.Append(t.Context(), "ch", data, store.AppendOptions{IdempotencyKey: fmt.Sprint(i)})
		took := time.Since(start)
		if err == nil {
			acked++
			continue
		}
		if !errors.Is(err, store.ErrNoSpace) {
			t.Fatalf("append %d: %v; want ErrNoSpace once full", i, err)
		}
		if took > time.Second {
			t.Errorf("ErrNoSpace took %v; want under 1s", took)
		}
		t.Logf("%d appends acknowledged; refused in %v: %v", acked, took, err)
		break
	}
	if h := s.Health(); !h.Degraded || !h.ReadOnly {
		t.Errorf("Health() = %+v; want degraded, read-only", h)
	}
	r, err := s.Read(t.Context(), "ch", store.Start, 10_000)
	if err != nil || len(r.Messages) != acked {
		t.Fatalf("Read = %d messages, %v; want %d", len(r.Messages), err, acked)
	}
}

// TestFullDiskRefusesAppends fills the disk under a server whose store
// is on a 32 MiB tmpfs (root; skipped without): JetStream's own limit, by
// default 75% of the disk's free space at start, refuses first, and the
// store answers store.ErrNoSpace at once.
func TestFullDiskRefusesAppends(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	srv := startServer(t, dir)
	s := openStore(t, srv.ClientURL(), Config{})
	data := make([]byte, 64<<10)
	rand.Read(data)
	acked := 0
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("1000 appends of 64 KiB into 32 MiB all succeeded")
		}
		start := time.Now()
		_, err := s.Append(t.Context(), "ch", data, store.AppendOptions{IdempotencyKey: fmt.Sprint(i)})
		took := time.Since(start)
		if err == nil {
			acked++
			continue
		}
		if !errors.Is(err, store.ErrNoSpace) || took > time.Second {
			t.Fatalf("append %d: %v after %v; want ErrNoSpace within 1s once full", i, err, took)
		}
		t.Logf("%d appends of 64 KiB acknowledged; refused in %v: %v", acked, took, err)
		break
	}
	r, err := s.Read(t.Context(), "ch", store.Start, 10_000)
	if err != nil || len(r.Messages) != acked {
		t.Fatalf("Read = %d messages, %v; want %d", len(r.Messages), err, acked)
	}
}
