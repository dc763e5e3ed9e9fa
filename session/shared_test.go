package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
)

// countingStore counts the reads that reach the real store beneath it.
type countingStore struct {
	store.Store
	reads atomic.Int64
}

func (c *countingStore) Read(ctx context.Context, channel string, after store.Cursor, limit int) (store.ReadResult, error) {
	c.reads.Add(1)
	return c.Store.Read(ctx, channel, after, limit)
}

func openCounting(t *testing.T) *countingStore {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &countingStore{Store: st}
}

func TestSharedReadsShareAPage(t *testing.T) {
	st := openCounting(t)
	ctx := context.Background()
	var ids []store.Cursor
	for i := range 5 {
		r, err := st.Append(ctx, "fan", fmt.Appendf(nil, `"m%d"`, i), store.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	var reads sharedReads
	const readers = 200
	pages := make([]*page, readers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			<-start
			p, err := reads.read(ctx, st, "fan", store.Start, 100, time.Time{})
			if err != nil {
				t.Error(err)
				return
			}
			pages[i] = p
		})
	}
	close(start)
	wg.Wait()
	if n := st.reads.Load(); n >= readers/2 {
		t.Fatalf("%d readers at one cursor made %d store reads; want them shared", readers, n)
	}
	for i, p := range pages {
		if p == nil || len(p.res.Messages) != len(ids) || len(p.frames(JSON)) != len(ids) {
			t.Fatalf("reader %d got %+v", i, p)
		}
		// One encoding per page and Format, whoever asks.
		if again := p.frames(JSON); &again[0][0] != &p.frames(JSON)[0][0] {
			t.Fatalf("reader %d: the page encoded its frames twice", i)
		}
		for j, f := range p.frames(JSON) {
			if cap(f) != len(f) {
				t.Fatalf("frame %d has spare capacity %d: an append could write into a shared frame", j, cap(f)-len(f))
			}
		}
	}
	t.Logf("%d readers, %d store reads", readers, st.reads.Load())
}

// An empty page must not be reused: a subscriber woken by an append reads
// again and must see it.
func TestSharedReadsDoNotReuseEmptyPage(t *testing.T) {
	st := openCounting(t)
	ctx := context.Background()
	r, err := st.Append(ctx, "fan", []byte(`"first"`), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var reads sharedReads
	p, err := reads.read(ctx, st, "fan", r.ID, 100, time.Time{})
	if err != nil || len(p.res.Messages) != 0 {
		t.Fatalf("read at the latest cursor = %+v, %v; want an empty page", p, err)
	}
	next, err := st.Append(ctx, "fan", []byte(`"second"`), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err = reads.read(ctx, st, "fan", r.ID, 100, time.Time{})
	if err != nil || len(p.res.Messages) != 1 || p.res.Messages[0].ID != next.ID {
		t.Fatalf("read after an append = %+v, %v; want the new message", p, err)
	}
}

// A read that asks for pages begun since a moment (a long-poll's first
// read) does not take a page read before it, which may lack newer
// messages; a read without one does.
func TestSharedReadsSince(t *testing.T) {
	st := openCounting(t)
	ctx := context.Background()
	if _, err := st.Append(ctx, "fan", []byte(`1`), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	var reads sharedReads
	if _, err := reads.read(ctx, st, "fan", store.Start, 100, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, "fan", []byte(`2`), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if p, _ := reads.read(ctx, st, "fan", store.Start, 100, time.Time{}); len(p.res.Messages) != 1 {
		t.Fatalf("shared read: %d messages, want the shared page's 1", len(p.res.Messages))
	}
	if p, _ := reads.read(ctx, st, "fan", store.Start, 100, time.Now()); len(p.res.Messages) != 2 {
		t.Fatalf("read since now: %d messages, want 2", len(p.res.Messages))
	}
}

// Long-polls that will wait share a recent empty page for their first
// read, whenever it started; other reads do not.
func TestSharedReadsEmptyBeforeWait(t *testing.T) {
	st := openCounting(t)
	ctx := context.Background()
	r, err := st.Append(ctx, "fan", []byte(`1`), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var reads sharedReads
	if p, err := reads.readBeforeWait(ctx, st, "fan", r.ID, 100, time.Now()); err != nil || len(p.res.Messages) != 0 {
		t.Fatalf("first read = %+v, %v; want an empty page", p, err)
	}
	for range 10 {
		if p, err := reads.readBeforeWait(ctx, st, "fan", r.ID, 100, time.Now()); err != nil || len(p.res.Messages) != 0 {
			t.Fatalf("read before wait = %+v, %v; want the shared empty page", p, err)
		}
	}
	if n := st.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for 11 reads before a wait, want 1", n)
	}
	if _, err := reads.read(ctx, st, "fan", r.ID, 100, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := st.reads.Load(); n != 2 {
		t.Fatalf("a plain read shared the empty page (%d store reads, want 2)", n)
	}
	// After an append the empty page may still be handed to a read before
	// a wait (the wait returns at once), but never to the read after it.
	next, err := st.Append(ctx, "fan", []byte(`2`), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Wait(ctx, "fan", r.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := reads.read(ctx, st, "fan", r.ID, 100, time.Time{}); err != nil || len(p.res.Messages) != 1 || p.res.Messages[0].ID != next.ID {
		t.Fatalf("read after the wait = %+v, %v; want the new message", p, err)
	}
}

// A subscriber whose context ends while it leads a shared read must not
// fail the others joined to it.
func TestSharedReadsSurviveLeaderCancel(t *testing.T) {
	st := openCounting(t)
	if _, err := st.Append(context.Background(), "fan", []byte(`"m"`), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	var reads sharedReads
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The leader's context is already done: the read still serves others.
	if _, err := reads.read(ctx, st, "fan", store.Start, 10, time.Time{}); err != nil {
		t.Fatalf("read with a done context: %v (the shared read must not depend on one reader's context)", err)
	}
	p, err := reads.read(context.Background(), st, "fan", store.Start, 10, time.Time{})
	if err != nil || len(p.res.Messages) != 1 {
		t.Fatalf("second reader = %+v, %v", p, err)
	}
}

// Pages of channels nobody reads again are forgotten by the sweeper, not
// kept until the next read of their channel: an idle server holds no
// messages in its shared pages.
func TestSharedReadsForgetIdleChannels(t *testing.T) {
	st := openCounting(t)
	ctx := context.Background()
	var reads sharedReads
	for i := range 100 {
		ch := fmt.Sprintf("idle.%d", i)
		if _, err := st.Append(ctx, ch, []byte(`"x"`), store.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := reads.read(ctx, st, ch, store.Start, 10, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() int {
		reads.mu.Lock()
		defer reads.mu.Unlock()
		return len(reads.chans)
	}
	if n := kept(); n != 100 {
		t.Fatalf("%d channels with pages after 100 reads, want 100", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for kept() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d channels still hold pages 10s after their reads (pages live %v)", kept(), sharedPageTTL)
		}
		time.Sleep(20 * time.Millisecond) // polling interval against the deadline
	}
	reads.mu.Lock()
	defer reads.mu.Unlock()
	if reads.chans != nil || reads.armed {
		t.Fatalf("after the last sweep: map %v, armed %v; want the map let go and the sweeper idle", reads.chans != nil, reads.armed)
	}
}
