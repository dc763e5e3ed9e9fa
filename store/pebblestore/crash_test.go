package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tether-run/tether/store"
)

// TestCrashKeepsAcknowledgedAppends simulates a power cut while publishers
// append: the disk keeps exactly what was synced. Every append acknowledged
// before the cut must survive with its idempotency key, and the log must
// have no holes.
func TestCrashKeepsAcknowledgedAppends(t *testing.T) {
	acked, crashed := crashUnderLoad(t)
	s := openTest(t, Config{Dir: "/db", fs: crashed})
	r, err := s.Read(t.Context(), "ch", store.Start, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for i, m := range r.Messages {
		if m.ID != formatCursor(uint64(i+1)) {
			t.Fatalf("message %d after the crash has ID %q; want a log without holes", i, m.ID)
		}
		if d, ok := acked[m.ID]; ok {
			if !bytes.Equal(d, m.Data) {
				t.Fatalf("message %q reads %q after the crash; was acknowledged as %q", m.ID, m.Data, d)
			}
			found++
		}
	}
	if found != len(acked) {
		t.Fatalf("%d of %d acknowledged appends survived the crash", found, len(acked))
	}
	for id, d := range acked {
		res, err := s.Append(t.Context(), "ch", d, store.AppendOptions{IdempotencyKey: string(d)})
		if err != nil || !res.Duplicate || res.ID != id {
			t.Fatalf("retry of %q after the crash = %+v, %v; want Duplicate of %q", d, res, err, id)
		}
	}
}

// crashUnderLoad runs 8 publishers against a store on a crashable
// in-memory filesystem, cuts the power once 200 appends are acknowledged,
// and returns what was acknowledged before the cut and the filesystem as
// the cut left it.
func crashUnderLoad(t *testing.T) (map[store.Cursor][]byte, *vfs.MemFS) {
	mem := vfs.NewCrashableMem()
	s, err := Open(Config{Dir: "/db", fs: mem})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked = map[store.Cursor][]byte{} // guarded by mu
		wg    sync.WaitGroup
	)
	ctx, stop := context.WithCancel(t.Context())
	for p := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				d := fmt.Appendf(nil, "%d/%d", p, i)
				r, err := s.Append(ctx, "ch", d, store.AppendOptions{IdempotencyKey: string(d)})
				if err != nil {
					return
				}
				mu.Lock()
				acked[r.ID] = d
				mu.Unlock()
			}
		})
	}
	eventually(t, "200 acknowledged appends", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	mu.Lock()
	before := maps.Clone(acked)
	mu.Unlock()
	crashed := mem.CrashClone(vfs.CrashCloneCfg{}) // synced data only
	stop()
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return before, crashed
}
