package natsstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/tether-run/tether/internal/tmpfstest"
	"github.com/tether-run/tether/store"
)

// TestVolumeFullRefusesAppends runs a nats-server whose store_dir is a
// 32 MiB tmpfs while JetStream believes it may keep 1 GiB, so that the
// volume itself fills (ENOSPC under the server's file store), not
// JetStream's accounting, which TestFullDiskRefusesAppends covers.
//
// nats-server 2.15 does not answer a publish its file store failed to
// write, and keeps the stream's write error until it restarts (stream.go,
// processJetStreamMsg: an I/O error is logged, not answered; filestore.go:
// fs.werr is sticky). So what the store can promise, and this test checks,
// is: an append on the full volume fails within its bound (opTimeout)
// without spinning, reads and Waits go on, and once the volume has grown
// and the server restarted, appends resume and every acknowledged message
// is there, once. It logs how the first refusal was answered and whether
// appends resumed before the restart.
func TestVolumeFullRefusesAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out append timeouts on a full volume")
	}
	dir := tmpfstest.Mount(t, "32m")
	srv := newServer(t, &server.Options{ServerName: "vol", StoreDir: filepath.Join(dir, "jetstream"), JetStreamMaxStore: 1 << 30})
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			shutdown(srv)
		}
	})
	s := openStore(t, srv.ClientURL(), Config{})

	data := make([]byte, 64<<10)
	rand.Read(data)
	acked := map[store.Cursor]string{}
	appendTo := func(st store.Store, key string) (time.Duration, error) {
		start := time.Now()
		r, err := st.Append(t.Context(), "vol", data, store.AppendOptions{IdempotencyKey: key})
		if err == nil && !r.Duplicate {
			acked[r.ID] = key
		}
		return time.Since(start), err
	}
	i := 0
	var cpu, wall time.Duration
	for ; ; i++ {
		if i > 1000 {
			t.Fatal("1000 appends of 64 KiB onto a 32 MiB volume all succeeded")
		}
		cpu0, wall0 := cpuTime(t), time.Now()
		took, err := appendTo(s, fmt.Sprint(i))
		if err == nil {
			continue
		}
		cpu, wall = cpuTime(t)-cpu0, time.Since(wall0)
		if took > opTimeout+2*time.Second {
			t.Fatalf("append %d on a full volume took %v (%v); want an answer within %v", i, took, err, opTimeout)
		}
		t.Logf("%d appends of 64 KiB acknowledged; the next failed in %v (ErrNoSpace: %v): %v",
			len(acked), took, errors.Is(err, store.ErrNoSpace), err)
		break
	}
	if cpu > wall/2+200*time.Millisecond {
		t.Errorf("the failing append used %v of CPU in %v; want no spinning", cpu, wall)
	}
	msgs, next, err := readAll(t, s)
	if err != nil || len(msgs) != len(acked) {
		t.Fatalf("Read on a full volume = %d messages, %v; want %d", len(msgs), err, len(acked))
	}
	if b, err := s.Bounds(t.Context(), "vol"); err != nil || b.Latest != next {
		t.Fatalf("Bounds on a full volume = %+v, %v; want latest %s", b, err, next)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	err = s.Wait(ctx, "vol", next)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait at the end on a full volume: %v; want it to block until its deadline", err)
	}

	tmpfstest.Resize(t, dir, "256m")
	ctx, cancel = context.WithTimeout(t.Context(), 3*time.Second)
	res, err := s.Append(ctx, "vol", data, store.AppendOptions{IdempotencyKey: fmt.Sprint(i)})
	cancel()
	t.Logf("append after the volume grew, before the server restarted: %+v, %v", res, err)
	if err == nil && !res.Duplicate {
		acked[res.ID] = fmt.Sprint(i)
	}

	// Restart the server on the grown volume: appends resume, and every
	// acknowledged message is there, once.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	shutdown(srv)
	stopped = true
	rs := openServerStore(t, dir, Config{})
	defer rs.Close()
	for j := range 5 {
		if _, err := appendTo(rs, fmt.Sprint(i+100+j)); err != nil {
			t.Fatalf("append after the volume grew and the server restarted: %v", err)
		}
	}
	msgs, _, err = readAll(t, rs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[store.Cursor]bool{}
	for _, m := range msgs {
		if seen[m.ID] {
			t.Errorf("message %s read twice after the restart", m.ID)
		}
		seen[m.ID] = true
	}
	for id, key := range acked {
		if !seen[id] {
			t.Errorf("acknowledged message %s (key %s) missing after the restart", id, key)
		}
	}
	t.Logf("after the restart: %d messages, %d acknowledged", len(msgs), len(acked))
}

// readAll reads channel "vol" from the start, a page of 64 at a time (a
// page of 64 KiB messages is one round trip per message), and returns its
// messages and the cursor after the last.
func readAll(t *testing.T, st store.Store) ([]store.Message, store.Cursor, error) {
	var msgs []store.Message
	cur := store.Start
	for {
		r, err := st.Read(t.Context(), "vol", cur, 64)
		if err != nil {
			return msgs, cur, err
		}
		msgs = append(msgs, r.Messages...)
		if len(r.Messages) == 0 {
			return msgs, r.Next, nil
		}
		cur = r.Next
	}
}

// cpuTime is the CPU time this process has used, user and system: the
// embedded server's included.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
